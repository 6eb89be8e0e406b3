//! Where each line of a job's log starts, kept per job and extended as the log grows, so
//! LAVA's line-numbered `scheduler.jobs.logs` (lavacli polls it every few seconds while a job
//! runs) reads only new bytes instead of the whole log on every call.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How many jobs' indexes are kept (the ones polled most recently).
const KEEP: usize = 32;

/// One job's index: the byte offset of every line start within the first `indexed` bytes.
#[derive(Debug, Default)]
struct Index {
    indexed: u64,
    starts: Vec<u64>,
    last_used: u64,
}

/// The indexes of recently read logs.
#[derive(Debug, Default)]
pub struct LineIndexes {
    jobs: HashMap<u64, Index>,
    clock: u64,
}

impl LineIndexes {
    /// The byte range of lines `start..end` (`end` `None`: to the end) of job `id`'s log file
    /// `path`, whose first `committed` bytes are final. Reads only bytes not indexed yet.
    pub fn range(
        &mut self,
        id: u64,
        path: &Path,
        committed: u64,
        start: u64,
        end: Option<u64>,
    ) -> std::io::Result<(u64, u64)> {
        self.clock += 1;
        let clock = self.clock;
        if !self.jobs.contains_key(&id) && self.jobs.len() >= KEEP {
            if let Some(oldest) = self
                .jobs
                .iter()
                .min_by_key(|(_, i)| i.last_used)
                .map(|(k, _)| *k)
            {
                self.jobs.remove(&oldest);
            }
        }
        let index = self.jobs.entry(id).or_default();
        index.last_used = clock;
        if committed < index.indexed {
            // Cannot happen (committed logs only grow), but never serve a stale index.
            *index = Index {
                last_used: clock,
                ..Index::default()
            };
        }
        if committed > index.indexed {
            let mut file = std::fs::File::open(path)?;
            file.seek(SeekFrom::Start(index.indexed))?;
            let mut fresh = vec![0; (committed - index.indexed) as usize];
            file.read_exact(&mut fresh)?;
            if index.indexed == 0 {
                index.starts.push(0);
            }
            let base = index.indexed;
            // A start equal to `committed` is kept: it is where the next line will begin.
            index
                .starts
                .extend(memchr::memchr_iter(b'\n', &fresh).map(|i| base + i as u64 + 1));
            index.indexed = committed;
        }
        let offset_of = |line: u64| {
            usize::try_from(line)
                .ok()
                .and_then(|line| index.starts.get(line).copied())
                .unwrap_or(committed)
        };
        let from = offset_of(start);
        let to = end.map_or(committed, offset_of).max(from);
        Ok((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_grows_with_the_log_and_forgets_the_least_recent_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.yaml");
        std::fs::write(&path, "- a\n- b\n- c\n").unwrap();
        let mut indexes = LineIndexes::default();
        assert_eq!(indexes.range(1, &path, 8, 1, None).unwrap(), (4, 8));
        std::fs::write(&path, "- a\n- b\n- c\n- d\n").unwrap();
        assert_eq!(indexes.range(1, &path, 16, 2, None).unwrap(), (8, 16));
        assert_eq!(indexes.range(1, &path, 16, 1, Some(3)).unwrap(), (4, 12));
        assert_eq!(indexes.range(1, &path, 16, 9, None).unwrap(), (16, 16));
        for job in 2..=(KEEP as u64 + 5) {
            indexes.range(job, &path, 16, 0, None).unwrap();
        }
        assert!(indexes.jobs.len() <= KEEP);
        assert!(
            !indexes.jobs.contains_key(&1),
            "the least recently read job went first"
        );
    }
}
