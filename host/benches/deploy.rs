//! Deploy throughput: one artifact decompressed while it downloads (`file://`, so the disk and
//! the decoder are what is measured), against the tool a user would otherwise use on the
//! same file (`gzip -dc`, `xz -dc`, `zstd -dc`, writing to a file too), with each run's peak
//! RSS. Run with `cargo xtask bench deploy [MiB]` (512 by default).
//!
//! The image is a disk image's mix: free space (whole MiB of zeros), repeated text and
//! pseudo-random bytes, compressing about 3:1 with gzip. Every run is a child process, so each
//! peak RSS is its own (wait4's ru_maxrss); each is run twice after a `sync`, alternating with
//! the tool, and the faster of the two counts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use basalt::dispatcher::archive::Compression;
use basalt::dispatcher::download::{download, Checksums, Limits};
use basalt::dispatcher::LocalFiles;

const MIB: u64 = 1024 * 1024;

/// Writes `mib` MiB of image-like data to `path`.
fn write_image(path: &Path, mib: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let text =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit; /usr/lib/x86_64-linux-gnu/";
    let mut block = vec![0u8; MIB as usize];
    for i in 0..mib {
        for (j, chunk) in block.chunks_mut(4096).enumerate() {
            match (i as usize % 4, j % 3) {
                (0, _) => chunk.fill(0),
                (_, 0) => chunk.fill(0),
                (_, 1) => {
                    for (k, b) in chunk.iter_mut().enumerate() {
                        *b = text[k % text.len()];
                    }
                }
                _ => {
                    for b in chunk.iter_mut() {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        *b = (state >> 56) as u8;
                    }
                }
            }
        }
        out.write_all(&block).unwrap();
    }
    out.flush().unwrap();
}

/// Runs `command`, returning its wall time and peak RSS (KiB).
fn measure(mut command: Command) -> (Duration, i64) {
    let _ = Command::new("sync").status();
    let started = Instant::now();
    let child = command.stdin(Stdio::null()).spawn().expect("cannot start");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, and pid is our own child, waited for exactly once here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed ({status})"
    );
    std::mem::forget(child);
    (elapsed, usage.ru_maxrss)
}

/// Whether two files hold the same bytes, read in 1 MiB pieces (reading them whole would
/// raise this process's RSS, which forked children inherit into their peak).
fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}

/// The child's side: one download, as a deploy runs it.
fn decode_here(source: &Path, compression: &str, target: &Path) {
    let compression = Compression::parse(Some(compression)).expect("a compression");
    let dir = source.parent().unwrap().to_path_buf();
    download(
        &format!("file://{}", source.display()),
        compression,
        target,
        Limits::within(Duration::from_secs(3600)),
        &LocalFiles::new([dir]),
        Checksums::default(),
        &|_| {},
    )
    .expect("the download");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--decode" {
        decode_here(Path::new(&args[2]), &args[3], Path::new(&args[4]));
        return;
    }
    let mib: u64 = std::env::var("BENCH_DEPLOY_MIB")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(512);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-deploy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("image.img");
    write_image(&image, mib);
    let me = std::env::current_exe().unwrap();
    println!("deploy: decompress-and-write of a {mib} MiB image (single-threaded unless said)");
    println!(
        "{:<6} {:>9} {:>12} {:>10}   {:>12} {:>10}   {:>6}",
        "", "packed", "basalt MB/s", "RSS MiB", "tool MB/s", "RSS MiB", "ratio"
    );
    for (name, pack, tool) in [
        ("gz", vec!["gzip", "-6", "-c"], vec!["gzip", "-dc"]),
        (
            "xz",
            vec!["xz", "-3", "-T0", "-c"],
            vec!["xz", "-dc", "-T1"],
        ),
        (
            "zstd",
            vec!["zstd", "-3", "-q", "-c"],
            vec!["zstd", "-dc", "-q"],
        ),
    ] {
        let packed = dir.join(format!("image.img.{name}"));
        let status = Command::new(pack[0])
            .args(&pack[1..])
            .arg(&image)
            .stdout(std::fs::File::create(&packed).unwrap())
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", pack[0]));
        assert!(status.success(), "{pack:?}");
        let packed_size = std::fs::metadata(&packed).unwrap().len();
        let ours_out = dir.join("ours.img");
        let tool_out = dir.join("tool.img");
        let ours = || {
            let mut ours = Command::new(&me);
            ours.arg("--decode").arg(&packed).arg(name).arg(&ours_out);
            measure(ours)
        };
        let theirs = || {
            let mut theirs = Command::new(tool[0]);
            theirs
                .args(&tool[1..])
                .arg(&packed)
                .stdout(std::fs::File::create(&tool_out).unwrap());
            measure(theirs)
        };
        let (mut ours_time, mut ours_rss) = (Duration::MAX, 0);
        let (mut tool_time, mut tool_rss) = (Duration::MAX, 0);
        for _ in 0..2 {
            let (t, rss) = ours();
            (ours_time, ours_rss) = (ours_time.min(t), ours_rss.max(rss));
            assert!(
                same_bytes(&ours_out, &image),
                "{name}: not the image as it was"
            );
            let (t, rss) = theirs();
            (tool_time, tool_rss) = (tool_time.min(t), tool_rss.max(rss));
        }
        let rate = |t: Duration| (mib * MIB) as f64 / 1e6 / t.as_secs_f64();
        println!(
            "{name:<6} {:>6} MiB {:>12.0} {:>10.1}   {:>12.0} {:>10.1}   {:>5.2}x",
            packed_size / MIB,
            rate(ours_time),
            ours_rss as f64 / 1024.0,
            rate(tool_time),
            tool_rss as f64 / 1024.0,
            ours_time.as_secs_f64() / tool_time.as_secs_f64()
        );
        let _ = std::fs::remove_file(&ours_out);
        let _ = std::fs::remove_file(&tool_out);
        if std::env::var_os("BENCH_DEPLOY_KEEP").is_none() {
            let _ = std::fs::remove_file(&packed);
        }
    }
    println!(
        "ratio: basalt's time over the tool's (goal: at most 1.2x); basalt also hashes sha256 and writes zero runs as holes"
    );
    if std::env::var_os("BENCH_DEPLOY_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
