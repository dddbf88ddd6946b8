//! Following a log file on this machine, through rotation.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::stream::Pipeline;
use super::{ConnectionEvent, LogFormat, LogSource};
use crate::analysis::ledger::{HASHED_LINE_MAX, LogPosition, head_hash, last_line_hash};

/// How much of the file's start is remembered to notice it being truncated and refilled between polls.
const HEAD_LEN: usize = 256;
const READ_CHUNK: usize = 1 << 20;
/// How much one poll reads at most. A log of millions of lines is then read over several polls, each applying
/// what it read before the next chunk is read, so memory does not grow with the log's length and a poll is
/// never held up for long by a backlog.
pub const POLL_BUDGET: u64 = 8 << 20;

/// Follows one log file: reads only bytes added since the last call, keeps a partial last record for the
/// next call, pairs received/authorized lines by pid, and survives rotation:
///
/// * the path now names a different file (rename-and-reopen rotation, `log_filename` without a time
///   pattern, logrotate's `create`): the rest of the old handle is read first, then the new file from 0;
/// * the file shrank, or its first bytes changed (`copytruncate`): it is read again from 0;
/// * with [`LogFollower::open_current_logfiles`], the file is whichever `current_logfiles` names for the
///   format, which the logging collector rewrites on every rotation.
pub struct LogFollower {
    target: Target,
    path: PathBuf,
    format: LogFormat,
    from_start: bool,
    file: File,
    identity: (u64, u64),
    offset: u64,
    head: Vec<u8>,
    pipeline: Pipeline,
    /// Bytes read at most per poll.
    budget: u64,
    /// The last poll stopped at its budget before the end of the file: more is waiting.
    behind: bool,
    /// After a restart that did not find the file it had read (rotated, truncated, replaced): lines at or before
    /// this time were applied already and are not applied again.
    skip_through: Option<DateTime<Utc>>,
}

/// Where a follower started, given where the ledger said it had stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The ledger had read no part of this source.
    Fresh,
    /// The same file, whole up to the offset it had reached: read on from there.
    AtOffset(u64),
    /// Not the file it had read (its first line or the line at the offset differ, or it is shorter): read from
    /// its start, leaving out lines no newer than the last one applied.
    FileChanged,
}

enum Target {
    Path,
    CurrentLogfiles { data_dir: PathBuf },
}

impl LogFollower {
    /// Follow `path`. With `from_start` false, only what is written after this call is read.
    pub fn open(path: PathBuf, format: LogFormat, from_start: bool) -> io::Result<Self> {
        Self::start(Target::Path, path, format, from_start)
    }

    /// Follow the file the logging collector currently writes for `format`, as named in
    /// `data_dir/current_logfiles` (needs `logging_collector = on` and read access to the data directory).
    pub fn open_current_logfiles(data_dir: PathBuf, format: LogFormat, from_start: bool) -> io::Result<Self> {
        let path = current_logfile(&data_dir, &format)?;
        Self::start(Target::CurrentLogfiles { data_dir }, path, format, from_start)
    }

    /// [`LogFollower::open`], resuming where the ledger's `position` says this source was applied up to.
    pub fn open_resuming(
        path: PathBuf,
        format: LogFormat,
        from_start: bool,
        position: Option<&LogPosition>,
    ) -> io::Result<(Self, Resumed)> {
        let mut follower = Self::start(Target::Path, path, format, from_start)?;
        let resumed = match position {
            None => Resumed::Fresh,
            Some(position) => follower.resume(position)?,
        };
        Ok((follower, resumed))
    }

    fn resume(&mut self, position: &LogPosition) -> io::Result<Resumed> {
        let len = self.file.metadata()?.len();
        let same = position.offset <= len
            && position.head_hash.is_some()
            && self.head_hash()? == position.head_hash
            && self.hash_before(position.offset)? == position.last_line_hash;
        self.pipeline.restart();
        if same {
            self.offset = position.offset;
            return Ok(Resumed::AtOffset(position.offset));
        }
        // Rotated away or truncated since: what the file holds now is read from its start, but a copy of lines
        // already applied (a file restored or copied under a new inode) is not applied twice.
        self.offset = 0;
        self.skip_through = position.last_at;
        Ok(Resumed::FileChanged)
    }

    /// How far this follower has applied the file, for the ledger to resume from; `source` names it there.
    pub fn position(&self, source: &str) -> io::Result<Option<LogPosition>> {
        let Some(pending) = self.pipeline.pending_bytes() else {
            return Ok(None);
        };
        let meta = self.file.metadata()?;
        let offset = self.offset.saturating_sub(pending as u64);
        Ok(Some(LogPosition {
            source: source.to_string(),
            file: self.path.display().to_string(),
            dev: meta.dev(),
            ino: meta.ino(),
            head_hash: self.head_hash()?,
            offset,
            last_line_hash: self.hash_before(offset)?,
            last_at: self.pipeline.latest().max(self.skip_through),
        }))
    }

    fn head_hash(&self) -> io::Result<Option<u64>> {
        let mut head = vec![0u8; HASHED_LINE_MAX + 1];
        let n = self.file.read_at(&mut head, 0)?;
        Ok(head_hash(&head[..n]))
    }

    /// [`last_line_hash`] of the bytes just before `offset`.
    fn hash_before(&self, offset: u64) -> io::Result<Option<u64>> {
        let want = offset.min(HASHED_LINE_MAX as u64 + 1);
        let mut tail = vec![0u8; usize::try_from(want).unwrap_or(0)];
        self.file.read_exact_at(&mut tail, offset - want)?;
        Ok(last_line_hash(&tail))
    }

    fn start(target: Target, path: PathBuf, format: LogFormat, from_start: bool) -> io::Result<Self> {
        let file = File::open(&path)?;
        let meta = file.metadata()?;
        let mut follower = LogFollower {
            target,
            path,
            pipeline: Pipeline::new(&format),
            format,
            from_start,
            identity: (meta.dev(), meta.ino()),
            offset: 0,
            head: Vec::new(),
            file,
            budget: POLL_BUDGET,
            behind: false,
            skip_through: None,
        };
        if !from_start {
            follower.offset = meta.len();
            if meta.len() > 0 {
                let mut last = [0u8; 1];
                follower.file.read_exact_at(&mut last, meta.len() - 1)?;
                if last[0] != b'\n' {
                    // We are in the middle of a record being written; its remainder is not a record.
                    follower.pipeline.resync();
                }
            }
        }
        follower.head = follower.read_head()?;
        Ok(follower)
    }

    /// Read at most `budget` bytes per poll (at least one chunk's worth is read whatever the budget).
    pub fn set_budget(&mut self, budget: u64) {
        self.budget = budget.max(1);
    }

    /// The last poll stopped at its budget: the file holds more than was read.
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// Read what was added since the last call, up to the budget, and return the connections it completes.
    pub fn poll(&mut self) -> io::Result<Vec<ConnectionEvent>> {
        let mut events = Vec::new();
        let mut budget = self.budget;
        self.behind = false;
        let wanted = match &self.target {
            Target::Path => Some(self.path.clone()),
            // While the collector rewrites the file we may read it half-written; try again next poll.
            Target::CurrentLogfiles { data_dir } => current_logfile(data_dir, &self.format).ok(),
        };
        let now = wanted
            .as_ref()
            .and_then(|p| fs::metadata(p).ok().map(|m| (p.clone(), m)));
        match now {
            Some((path, meta)) if path != self.path || (meta.dev(), meta.ino()) != self.identity => {
                // Rotated: finish the old file through the handle we hold, then start the new one at 0.
                if !self.read_some(&mut events, &mut budget)? {
                    // The old file's rest takes more polls; the rotation is seen again next time.
                    self.behind = true;
                    self.pipeline.settle(&mut events);
                    return Ok(events);
                }
                self.pipeline.end_of_file(&mut events);
                match File::open(&path) {
                    Ok(file) => {
                        self.identity = (meta.dev(), meta.ino());
                        self.file = file;
                        self.path = path;
                        self.offset = 0;
                        self.head.clear();
                        self.pipeline.restart();
                    }
                    // Gone again between stat and open: keep the old handle and retry next poll.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.pipeline.settle(&mut events);
                        return Ok(events);
                    }
                    Err(e) => return Err(e),
                }
            }
            Some((_, meta)) if meta.len() < self.offset || !self.head_unchanged()? => {
                // Truncated in place (copytruncate): whatever is in it now is new.
                self.offset = 0;
                self.head.clear();
                self.pipeline.restart();
            }
            // Same file, or the path is missing mid-rotation: keep reading the handle we hold.
            _ => {}
        }
        self.behind = !self.read_some(&mut events, &mut budget)?;
        self.pipeline.settle(&mut events);
        if self.head.len() < HEAD_LEN {
            self.head = self.read_head()?;
        }
        if let Some(through) = self.skip_through {
            events.retain(|e| e.at > through);
        }
        Ok(events)
    }

    /// Lines that read like connections but were refused (see [`super::provenance`]) since the last call, and
    /// how many more beyond those kept.
    pub fn take_suspects(&mut self) -> (Vec<super::SuspectLine>, u64) {
        self.pipeline.take_suspects()
    }

    /// Refused attempts and setting changes read since the last call.
    pub fn take_news(&mut self) -> super::LogNews {
        let mut news = self.pipeline.take_news();
        if let Some(through) = self.skip_through {
            news.refused.retain(|r| r.at > through);
            news.changes.retain(|c| c.at > through);
        }
        news
    }

    /// The file being read now (it changes on rotation when following `current_logfiles`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> &LogFormat {
        &self.format
    }

    /// What this source is, for [`super::limitations`].
    pub fn source(&self) -> LogSource {
        LogSource::File {
            path: self.path.clone(),
            format: self.format.clone(),
            from_start: self.from_start,
        }
    }

    /// Read on from the offset until the end of the file (true) or until `budget` is spent (false).
    fn read_some(&mut self, events: &mut Vec<ConnectionEvent>, budget: &mut u64) -> io::Result<bool> {
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if *budget == 0 {
                return Ok(false);
            }
            let want = usize::try_from(*budget).unwrap_or(READ_CHUNK).min(READ_CHUNK);
            let n = match self.file.read(&mut buf[..want]) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            *budget = budget.saturating_sub(n as u64);
            self.pipeline.feed(&buf[..n], events);
        }
    }

    fn read_head(&self) -> io::Result<Vec<u8>> {
        let mut head = vec![0u8; HEAD_LEN];
        let n = self.file.read_at(&mut head, 0)?;
        head.truncate(n);
        Ok(head)
    }

    fn head_unchanged(&self) -> io::Result<bool> {
        if self.head.is_empty() {
            return Ok(true);
        }
        let mut now = vec![0u8; self.head.len()];
        let n = self.file.read_at(&mut now, 0)?;
        Ok(n == self.head.len() && now == self.head)
    }
}

/// The file `current_logfiles` names for `format`, made absolute against the data directory. The listing is read
/// with the small-file bounds: it is a few lines, and a data directory is no reason to trust a file's size or kind.
fn current_logfile(data_dir: &Path, format: &LogFormat) -> io::Result<PathBuf> {
    let listing_path = data_dir.join("current_logfiles");
    let listing = crate::files::read_small_text(&listing_path)
        .map_err(|e| io::Error::other(format!("{}: {e}", listing_path.display())))?;
    let key = format.current_logfiles_key();
    listing
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
        .map(|name| data_dir.join(name))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("current_logfiles lists no {key} file (is {key} in log_destination?)"),
            )
        })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn received(pid: i32) -> String {
        format!("2026-11-27 17:42:50.000 UTC [{pid}] LOG:  connection received: host=10.0.0.{pid} port=5\n")
    }

    fn authorized(pid: i32) -> String {
        format!(
            "2026-11-27 17:42:50.001 UTC [{pid}] LOG:  connection authorized: user=u{pid} database=d \
             SSL enabled (protocol=TLSv1.2, cipher=AES128-SHA, bits=128)\n"
        )
    }

    fn append(path: &Path, text: &str) {
        let mut file = File::options().create(true).append(true).open(path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    fn pids(events: &[ConnectionEvent]) -> Vec<i32> {
        events.iter().map(|e| e.pid).collect()
    }

    fn stderr() -> LogFormat {
        LogFormat::Stderr {
            prefix: "%m [%p] ".into(),
        }
    }

    #[test]
    fn reads_only_new_bytes_and_keeps_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg.log");
        append(&path, &(received(1) + &authorized(1)));
        let mut from_end = LogFollower::open(path.clone(), stderr(), false).unwrap();
        let mut from_start = LogFollower::open(path.clone(), stderr(), true).unwrap();
        assert_eq!(pids(&from_start.poll().unwrap()), vec![1]);
        assert!(from_end.poll().unwrap().is_empty());

        let second = received(2) + &authorized(2);
        let (head, tail) = second.split_at(second.len() - 10);
        append(&path, head);
        assert!(from_end.poll().unwrap().is_empty());
        append(&path, tail);
        let events = from_end.poll().unwrap();
        assert_eq!(pids(&events), vec![2]);
        assert_eq!(events[0].client_addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(pids(&from_start.poll().unwrap()), vec![2]);
        assert!(from_start.poll().unwrap().is_empty());
    }

    #[test]
    fn opening_mid_record_skips_the_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg.log");
        let first = authorized(1);
        append(&path, &(received(1) + &first[..20]));
        let mut follower = LogFollower::open(path.clone(), stderr(), false).unwrap();
        append(&path, &(first[20..].to_string() + &received(2) + &authorized(2)));
        assert_eq!(pids(&follower.poll().unwrap()), vec![2]);
    }

    #[test]
    fn rename_rotation_finishes_the_old_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg.log");
        append(&path, &received(1));
        let mut follower = LogFollower::open(path.clone(), stderr(), true).unwrap();
        assert!(follower.poll().unwrap().is_empty());
        // The writer still holds the renamed file and finishes its line there.
        fs::rename(&path, dir.path().join("pg.log.1")).unwrap();
        append(&dir.path().join("pg.log.1"), &(authorized(1) + &received(2)));
        assert_eq!(
            pids(&follower.poll().unwrap()),
            vec![1],
            "path missing: old handle read"
        );
        append(&dir.path().join("pg.log.1"), &authorized(2)[..30]);
        append(&path, &(received(3) + &authorized(3)));
        let events = follower.poll().unwrap();
        // pid 2's line was cut short by rotation: parsed as far as it went, it is not a valid line.
        assert_eq!(pids(&events), vec![3]);
        assert!(follower.poll().unwrap().is_empty());
        assert_eq!(
            follower.take_suspects(),
            (Vec::new(), 0),
            "a torn line is not a forgery"
        );
    }

    #[test]
    fn truncation_restarts_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg.log");
        append(&path, &(received(1) + &authorized(1) + &received(2) + &authorized(2)));
        let mut follower = LogFollower::open(path.clone(), stderr(), true).unwrap();
        assert_eq!(pids(&follower.poll().unwrap()), vec![1, 2]);
        File::options().write(true).open(&path).unwrap().set_len(0).unwrap();
        append(&path, &(received(3) + &authorized(3)));
        assert_eq!(pids(&follower.poll().unwrap()), vec![3]);
        // Truncated and refilled past the old offset before the next poll: the changed head gives it away.
        File::options().write(true).open(&path).unwrap().set_len(0).unwrap();
        let mut refill = String::new();
        for pid in 4..10 {
            refill += &(received(pid) + &authorized(pid));
        }
        append(&path, &refill);
        assert_eq!(pids(&follower.poll().unwrap()), (4..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_log_larger_than_the_budget_is_read_over_several_polls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg.log");
        let text: String = (1..=200).map(|pid| received(pid) + &authorized(pid)).collect();
        append(&path, &text);
        let mut follower = LogFollower::open(path.clone(), stderr(), true).unwrap();
        // About 5 connections' worth of bytes per poll.
        follower.set_budget(1000);
        let mut seen = Vec::new();
        let mut polls = 0;
        loop {
            let events = follower.poll().unwrap();
            assert!(events.len() <= 6, "one poll returned {} events", events.len());
            seen.extend(pids(&events));
            polls += 1;
            if !follower.is_behind() {
                break;
            }
        }
        assert_eq!(seen, (1..=200).collect::<Vec<_>>(), "every connection, once, in order");
        assert!(polls > 30, "read in {polls} polls");

        // A rotation while behind: the old file is finished over polls before the new one is started.
        append(&path, &(received(201) + &authorized(201)));
        follower.set_budget(60);
        fs::rename(&path, dir.path().join("pg.log.1")).unwrap();
        append(&path, &(received(202) + &authorized(202)));
        let mut seen = Vec::new();
        for _ in 0..40 {
            seen.extend(pids(&follower.poll().unwrap()));
        }
        assert_eq!(seen, vec![201, 202]);
    }

    #[test]
    fn follows_current_logfiles() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        fs::create_dir(data.join("log")).unwrap();
        fs::write(data.join("current_logfiles"), "stderr log/a.log\ncsvlog log/a.csv\n").unwrap();
        append(&data.join("log/a.log"), &(received(1) + &authorized(1)));
        let mut follower = LogFollower::open_current_logfiles(data.to_path_buf(), stderr(), false).unwrap();
        assert_eq!(follower.path(), data.join("log/a.log"));
        append(&data.join("log/a.log"), &(received(2) + &authorized(2)));
        append(&data.join("log/b.log"), &(received(3) + &authorized(3)));
        fs::write(data.join("current_logfiles"), "stderr log/b.log\ncsvlog log/b.csv\n").unwrap();
        assert_eq!(pids(&follower.poll().unwrap()), vec![2, 3]);
        assert_eq!(follower.path(), data.join("log/b.log"));
        let err = LogFollower::open_current_logfiles(data.to_path_buf(), LogFormat::Json, false)
            .err()
            .unwrap();
        assert!(err.to_string().contains("jsonlog"), "{err}");
    }

    /// A `current_logfiles` that is a FIFO (or a device, or huge) is refused at once: reading it whole would block
    /// forever or fill memory, on open and on every poll while following.
    #[test]
    fn a_current_logfiles_that_is_no_small_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        nix::unistd::mkfifo(&data.join("current_logfiles"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = LogFollower::open_current_logfiles(data.to_path_buf(), stderr(), false)
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a regular file"), "{err}");

        fs::remove_file(data.join("current_logfiles")).unwrap();
        let big = File::create(data.join("current_logfiles")).unwrap();
        big.set_len(crate::files::MAX_SMALL_FILE + 1).unwrap();
        let err = LogFollower::open_current_logfiles(data.to_path_buf(), stderr(), false)
            .err()
            .unwrap();
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}
