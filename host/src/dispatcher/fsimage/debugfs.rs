//! Writing into an ext2/3/4 file system image with e2fsprogs' `debugfs`, as LAVA's
//! e2fsprogs backend does: no mount, no loop device, no libguestfs appliance — one batch of
//! `mkdir`/`write`/`symlink`/`sif` commands per injection.
//!
//! Every path is written so that `debugfs` follows a symlink the image already has where a
//! directory of the tarball is (`/lib` → `usr/lib` on a merged-/usr root): `debugfs`
//! resolves every component of a path but the last, so the parent of each name is given as
//! `PARENT/.`. Files' contents are extracted into a scratch directory under numbered names,
//! and `debugfs` runs there, so no name from the tarball ever becomes a path on the worker.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::superblock::Superblock;
use super::FsImageError;
use crate::dispatcher::archive::Compression;

/// A file system to write into: an image file and where in it the file system starts (a
/// partition's offset, 0 for an image that is one file system).
#[derive(Debug, Clone)]
pub struct FileSystem {
    /// The image file.
    pub image: PathBuf,
    /// The file system's first byte in it.
    pub offset: u64,
}

/// What to put into a file system from a tarball.
pub struct TarInjection<'a> {
    /// The tarball, plain or compressed (the compression is read from its first bytes).
    pub tarball: &'a Path,
    /// The directory of the file system its members go below (`/` for LAVA's overlay).
    pub under: &'a str,
    /// Only members below this directory of the tarball are taken, relative to it (the
    /// qemu guest disk holds what the overlay has below `/lava-<job>`).
    pub strip: Option<&'a str>,
}

/// What an injection did.
#[derive(Debug, Default)]
pub struct Injected {
    /// Commands given to debugfs.
    pub commands: usize,
    /// Regular files written.
    pub files: usize,
    /// Members debugfs cannot make (device nodes, FIFOs), skipped as LAVA skips them.
    pub skipped: Vec<String>,
}

impl FileSystem {
    /// How debugfs is told where the file system is (`IMAGE?offset=N`, read by libext2fs).
    fn spec(&self) -> Result<String, FsImageError> {
        let image = self
            .image
            .to_str()
            .filter(|p| !p.contains('?'))
            .ok_or_else(|| {
                FsImageError::Io(format!(
                    "{}: debugfs cannot open a path with '?' or that is not UTF-8",
                    self.image.display()
                ))
            })?;
        Ok(match self.offset {
            0 => image.to_owned(),
            offset => format!("{image}?offset={offset}"),
        })
    }

    /// Its superblock, or an error saying it is not an ext file system.
    pub fn superblock(&self) -> Result<Superblock, FsImageError> {
        Superblock::read(&self.image, self.offset)
            .map_err(|e| FsImageError::Io(format!("{}: {e}", self.image.display())))?
            .ok_or_else(|| FsImageError::NotExt {
                image: self.image.display().to_string(),
                offset: self.offset,
            })
    }
}

/// A path inside the file system, as validated components.
pub(super) type FsPath = Vec<String>;

/// A path for a command: `"/a/b/./name"`, so `b` is followed if it is a symlink.
fn child(parent: &[String], name: &str) -> String {
    match parent.is_empty() {
        true => format!("\"/{name}\""),
        false => format!("\"/{}/./{name}\"", parent.join("/")),
    }
}

/// A directory itself, through whatever symlink leads to it: `"/a/b/."`.
fn directory(path: &[String]) -> String {
    match path.is_empty() {
        true => "\"/\"".to_owned(),
        false => format!("\"/{}/.\"", path.join("/")),
    }
}

/// The components of `name` (a tarball member or a directory), refusing what debugfs's
/// batch syntax cannot carry and what leaves its directory.
pub(super) fn components(name: &str) -> Result<FsPath, FsImageError> {
    if name.contains(['"', '\\', '\n', '\r']) {
        return Err(FsImageError::BadName(format!(
            "{name:?}: debugfs cannot write a name with a quote, backslash or line break"
        )));
    }
    let mut parts = Vec::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(FsImageError::BadName(format!(
                    "{name:?}: a member may not lead out of its directory with '..'"
                )))
            }
        }
    }
    Ok(parts)
}

/// One command of the batch. A directory is made only where the image has none of that name
/// (debugfs 1.47's `mkdir` of an existing name leaves an unconnected inode behind), which is
/// known only once the image's directories are listed, so `mkdir` waits until then.
enum Cmd {
    Mkdir(FsPath),
    Line(String),
}

/// Builds the batch, with what it needs from the tarball in `scratch`.
struct Batch<'a> {
    commands: Vec<Cmd>,
    seen_dirs: HashSet<FsPath>,
    /// Where each regular file's contents went, for hard links to it.
    contents: HashMap<FsPath, String>,
    scratch: &'a Path,
    injected: Injected,
    /// Bytes the files take, each rounded up to 4 KiB (LAVA's estimate).
    needed: u64,
}

impl<'a> Batch<'a> {
    fn new(scratch: &'a Path) -> Self {
        Self {
            commands: Vec::new(),
            seen_dirs: HashSet::new(),
            contents: HashMap::new(),
            scratch,
            injected: Injected::default(),
            needed: 0,
        }
    }

    /// Whether what the batch writes fits in the file system's free space.
    fn fits(&self, fs: &FileSystem, superblock: &Superblock) -> Result<(), FsImageError> {
        match self.needed > superblock.free_bytes() {
            true => Err(FsImageError::NoSpace {
                image: fs.image.display().to_string(),
                needed: self.needed,
                free: superblock.free_bytes(),
            }),
            false => Ok(()),
        }
    }

    /// Refuses a batch that cannot fit, else lists the parents its `mkdir`s go into and runs
    /// it.
    fn carry_out(
        self,
        fs: &FileSystem,
        superblock: &Superblock,
        deadline: Instant,
    ) -> Result<Injected, FsImageError> {
        self.fits(fs, superblock)?;
        let existing = list(fs, &self.parents_to_list(), self.scratch, deadline)?;
        let commands = self.render(&existing);
        run(fs, &commands, self.scratch, deadline)?;
        let mut injected = self.injected;
        injected.commands = commands.len();
        Ok(injected)
    }

    fn ensure_parents(&mut self, path: &[String]) {
        for end in 1..path.len() {
            let dir = path[..end].to_vec();
            if self.seen_dirs.insert(dir.clone()) {
                self.commands.push(Cmd::Mkdir(dir));
            }
        }
    }

    fn line(&mut self, line: String) {
        self.commands.push(Cmd::Line(line));
    }

    /// The batch as debugfs reads it: each `mkdir` kept only where `existing` (the names in
    /// each parent directory, as the image has them) has no such name.
    fn render(&self, existing: &HashMap<FsPath, HashSet<String>>) -> Vec<String> {
        self.commands
            .iter()
            .filter_map(|cmd| match cmd {
                Cmd::Line(line) => Some(line.clone()),
                Cmd::Mkdir(path) => {
                    let (name, parent) = (&path[path.len() - 1], &path[..path.len() - 1]);
                    let there = existing
                        .get(parent)
                        .is_some_and(|names| names.contains(name));
                    (!there).then(|| format!("mkdir {}", child(parent, name)))
                }
            })
            .collect()
    }

    /// The directories whose entries decide the `mkdir`s.
    fn parents_to_list(&self) -> Vec<FsPath> {
        let mut parents: Vec<FsPath> = self
            .commands
            .iter()
            .filter_map(|cmd| match cmd {
                Cmd::Mkdir(path) => Some(path[..path.len() - 1].to_vec()),
                Cmd::Line(_) => None,
            })
            .collect();
        parents.sort();
        parents.dedup();
        parents
    }

    fn ownership(&mut self, target: &str, mode: u32, uid: u64, gid: u64) {
        self.line(format!("sif {target} mode 0{mode:o}"));
        self.line(format!("sif {target} uid {uid}"));
        self.line(format!("sif {target} gid {gid}"));
    }

    fn write(&mut self, path: &FsPath, source: &str, mode: u32, uid: u64, gid: u64) {
        self.ensure_parents(path);
        let (name, parent) = (&path[path.len() - 1], &path[..path.len() - 1]);
        let target = child(parent, name);
        self.line(format!("rm {target}"));
        self.line(format!("write {source} {target}"));
        self.ownership(&target, 0o100000 | (mode & 0o7777), uid, gid);
        self.injected.files += 1;
    }

    fn add<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        under: &[String],
        strip: Option<&FsPath>,
    ) -> Result<(), FsImageError> {
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| FsImageError::BadName("a member's name is not UTF-8".to_owned()))?;
        let mut relative = components(&raw)?;
        if let Some(strip) = strip {
            if !relative.starts_with(strip) {
                return Ok(());
            }
            relative.drain(..strip.len());
        }
        let mut path: FsPath = under.to_vec();
        path.extend(relative);
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644);
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let kind = header.entry_type();
        if path.is_empty() {
            // The root itself: its mode is the image's, as LAVA leaves it.
            return Ok(());
        }
        if kind.is_dir() {
            self.ensure_parents(&path);
            if self.seen_dirs.insert(path.clone()) {
                self.commands.push(Cmd::Mkdir(path.clone()));
            }
            let target = directory(&path);
            self.ownership(&target, 0o040000 | (mode & 0o7777), uid, gid);
        } else if kind.is_symlink() {
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            if link.contains(['"', '\\', '\n', '\r']) || link.is_empty() {
                return Err(FsImageError::BadName(format!(
                    "{raw:?}: symlink target {link:?} cannot be written by debugfs"
                )));
            }
            self.ensure_parents(&path);
            let target = child(&path[..path.len() - 1], &path[path.len() - 1]);
            self.line(format!("rm {target}"));
            self.line(format!("symlink {target} \"{link}\""));
            self.line(format!("sif {target} uid {uid}"));
            self.line(format!("sif {target} gid {gid}"));
        } else if kind.is_hard_link() {
            // debugfs's `ln` leaves the link count wrong; the contents are written again.
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let mut linked = components(&link)?;
            if let Some(strip) = strip {
                if linked.starts_with(strip) {
                    linked.drain(..strip.len());
                }
            }
            let mut linked_path: FsPath = under.to_vec();
            linked_path.extend(linked);
            let Some(source) = self.contents.get(&linked_path).cloned() else {
                return Err(FsImageError::BadName(format!(
                    "{raw:?}: hard link to {link:?}, which the tarball does not hold before it"
                )));
            };
            self.write(&path, &source, mode, uid, gid);
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let source = format!("f{}", self.injected.files);
            let mut out = std::fs::File::create(self.scratch.join(&source))
                .map_err(|e| FsImageError::Io(format!("{}: {e}", self.scratch.display())))?;
            let size = std::io::copy(&mut entry, &mut out)
                .map_err(|e| FsImageError::Tar(format!("{raw}: {e}")))?;
            self.needed += size.div_ceil(4096) * 4096;
            self.contents.insert(path.clone(), source.clone());
            self.write(&path, &source, mode, uid, gid);
        } else {
            self.injected.skipped.push(raw);
        }
        Ok(())
    }
}

/// Puts the members of a tarball into the file system, as LAVA's `inject_tar`: directories
/// made (their modes and owners set), files written over whatever was there, symlinks made;
/// refused before anything is written when the files cannot fit.
pub fn inject_tar(
    fs: &FileSystem,
    what: &TarInjection<'_>,
    scratch: &Path,
    deadline: Instant,
) -> Result<Injected, FsImageError> {
    let superblock = fs.superblock()?;
    let file = std::fs::File::open(what.tarball)
        .map_err(|e| FsImageError::Io(format!("{}: {e}", what.tarball.display())))?;
    let mut reader = BufReader::new(file);
    let compression = Compression::sniff(
        reader
            .fill_buf()
            .map_err(|e| FsImageError::Io(format!("{}: {e}", what.tarball.display())))?,
    );
    let decoder = compression
        .decoder(reader)
        .map_err(|e| FsImageError::Tar(format!("{}: {e}", what.tarball.display())))?;
    let mut archive = tar::Archive::new(decoder);
    let under = components(what.under)?;
    let strip = what.strip.map(components).transpose()?;
    let mut batch = Batch::new(scratch);
    let entries = archive
        .entries()
        .map_err(|e| FsImageError::Tar(format!("{}: {e}", what.tarball.display())))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| FsImageError::Tar(format!("{}: {e}", what.tarball.display())))?;
        batch.add(entry, &under, strip.as_ref())?;
    }
    batch.carry_out(fs, &superblock, deadline)
}

/// Writes one file at `path` in the file system (its directories made), as LAVA's
/// `inject_file`.
pub fn inject_file(
    fs: &FileSystem,
    file: &Path,
    path: &str,
    scratch: &Path,
    deadline: Instant,
) -> Result<(), FsImageError> {
    let superblock = fs.superblock()?;
    let target = components(path)?;
    if target.is_empty() {
        return Err(FsImageError::BadName(format!("{path:?} names no file")));
    }
    let size = std::fs::metadata(file)
        .map_err(|e| FsImageError::Io(format!("{}: {e}", file.display())))?
        .len();
    let mut batch = Batch::new(scratch);
    batch.needed = size;
    // Before the copy: a file too big for the image is not copied for nothing.
    batch.fits(fs, &superblock)?;
    std::fs::copy(file, scratch.join("f0"))
        .map_err(|e| FsImageError::Io(format!("{}: {e}", file.display())))?;
    batch.write(&target, "f0", 0o644, 0, 0);
    batch.carry_out(fs, &superblock, deadline).map(drop)
}

/// What debugfs prints that is not an error: its banner, and the answer this module's `rm`
/// expects (no file there to remove).
fn benign(line: &str) -> bool {
    line.trim().is_empty()
        || (line.starts_with("debugfs ") && line.ends_with(')'))
        || line.starts_with("rm: File not found by ext2_lookup")
}

/// What each directory of `dirs` holds in the image, by name (through symlinks to it); a
/// directory that is not there holds nothing. One read-only debugfs run of `ls -p`, whose
/// echoed commands split its output.
fn list(
    fs: &FileSystem,
    dirs: &[FsPath],
    scratch: &Path,
    deadline: Instant,
) -> Result<HashMap<FsPath, HashSet<String>>, FsImageError> {
    let mut found = HashMap::new();
    if dirs.is_empty() {
        return Ok(found);
    }
    let commands: Vec<String> = dirs
        .iter()
        .map(|dir| format!("ls -p {}", directory(dir)))
        .collect();
    let (output, _) = debugfs(fs, &commands, scratch, deadline, false)?;
    let mut current: Option<&FsPath> = None;
    let mut echoes = commands.iter().zip(dirs).peekable();
    for line in output.lines() {
        if let Some((command, dir)) = echoes.peek() {
            if line == format!("debugfs: {command}") {
                current = Some(dir);
                echoes.next();
                continue;
            }
        }
        // `/INODE/MODE/UID/GID/NAME/SIZE/`
        let fields: Vec<&str> = line.split('/').collect();
        if let (Some(dir), true) = (current, fields.len() >= 7) {
            let name = fields[5];
            if name != "." && name != ".." {
                found
                    .entry(dir.clone())
                    .or_insert_with(HashSet::new)
                    .insert(name.to_owned());
            }
        }
    }
    Ok(found)
}

/// Runs the batch in `scratch` (where the files' contents are), under the deadline.
fn run(
    fs: &FileSystem,
    commands: &[String],
    scratch: &Path,
    deadline: Instant,
) -> Result<(), FsImageError> {
    debugfs(fs, commands, scratch, deadline, true).map(drop)
}

/// Runs debugfs on the batch, returning what it printed on stdout and on stderr; any
/// error it reported fails it.
fn debugfs(
    fs: &FileSystem,
    commands: &[String],
    scratch: &Path,
    deadline: Instant,
    write: bool,
) -> Result<(String, String), FsImageError> {
    let spec = fs.spec()?;
    let script = scratch.join("commands.debugfs");
    let errors = scratch.join("debugfs.stderr");
    let printed = scratch.join("debugfs.stdout");
    let io = |e: std::io::Error| FsImageError::Io(format!("{}: {e}", scratch.display()));
    let mut text = commands.join("\n");
    text.push('\n');
    std::fs::write(&script, text).map_err(io)?;
    let stderr = std::fs::File::create(&errors).map_err(io)?;
    let stdout = std::fs::File::create(&printed).map_err(io)?;
    let mut program = Command::new("debugfs");
    if write {
        program.arg("-w");
    }
    let mut child = program
        .args(["-f", "commands.debugfs", &spec])
        .current_dir(scratch)
        .env("DEBUGFS_PAGER", "__none__")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| FsImageError::Tool(format!("cannot run debugfs ({e}): install e2fsprogs")))?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(FsImageError::Timeout(format!(
                "debugfs on {} did not finish before the deploy's timeout",
                fs.image.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&printed).unwrap_or_default();
    let printed = std::fs::read_to_string(&errors).unwrap_or_default();
    // A listing of a directory that is not there is an answer, not a failure.
    let failures: Vec<&str> = match write {
        true => printed.lines().filter(|l| !benign(l)).collect(),
        false => Vec::new(),
    };
    if failures
        .iter()
        .any(|l| l.contains("Could not allocate block"))
    {
        return Err(FsImageError::NoSpace {
            image: fs.image.display().to_string(),
            needed: 0,
            free: 0,
        });
    }
    if !status.success() || !failures.is_empty() {
        let mut shown: Vec<&str> = failures.iter().take(3).copied().collect();
        if failures.len() > 3 {
            shown.push("…");
        }
        return Err(FsImageError::Debugfs {
            image: fs.image.display().to_string(),
            status: status.to_string(),
            errors: shown.join("; "),
        });
    }
    Ok((output, printed))
}

/// Makes an empty file system image of `size_mb` MiB, as LAVA's `create_ext4`
/// (`mkfs.FSTYPE -q -L LABEL -F`), returning its UUID.
pub fn create(
    path: &Path,
    size_mb: u64,
    fstype: &str,
    label: &str,
) -> Result<String, FsImageError> {
    let io = |e: std::io::Error| FsImageError::Io(format!("{}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(io)?;
    file.set_len(size_mb.saturating_mul(1 << 20)).map_err(io)?;
    drop(file);
    let out = Command::new("mke2fs")
        .args(["-q", "-t", fstype, "-L", label, "-F"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FsImageError::Tool(format!("cannot run mke2fs ({e}): install e2fsprogs")))?;
    if !out.status.success() {
        return Err(FsImageError::Tool(format!(
            "mke2fs -t {fstype} {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let fs = FileSystem {
        image: path.to_path_buf(),
        offset: 0,
    };
    Ok(fs.superblock()?.uuid)
}
