//! `shm rm` and `shm gc`: removing segments, by name or because their writer is gone.

use crate::cli::{GcArgs, RmArgs};
use crate::json::Json;
use crate::output::{exit, Failure, Outcome, Style};
use crate::scan::{self, Status};
use crate::segment_file::{normalize_name, offset, path_of, SegmentFile, MAGIC, STATE_READY};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

/// Runs `shm rm`: removes each name; the exit code is that of the last failure.
pub fn rm(args: &RmArgs) -> Outcome {
    let mut code = exit::OK;
    let mut out = std::io::stdout().lock();
    for given in &args.names {
        match remove_one(given, args.force) {
            Ok(Some(name)) => writeln!(out, "removed {name}")?,
            Ok(None) => {}
            Err(f) => {
                crate::output::error_line(&f);
                code = f.code;
            }
        }
    }
    out.flush()?;
    Ok(code)
}

/// Removes one segment; `None` if it did not exist and `force` says that is fine.
fn remove_one(given: &str, force: bool) -> Result<Option<String>, Failure> {
    let name = normalize_name(given).map_err(|m| Failure::new(exit::USAGE, m))?;
    if !force {
        let file = SegmentFile::open(&name).map_err(|e| Failure::file(&name, &e))?;
        match file.magic() {
            Some(MAGIC) => {}
            found => {
                return Err(Failure::new(
                    exit::NOT_FOUND,
                    format!(
                        "{name:?} is not a segment of this format (magic {}); `shm rm --force` removes it anyway",
                        found.map_or("missing".to_string(), |m| format!("{m:#018x}"))
                    ),
                ))
            }
        }
    }
    match shm_core::remove(&name) {
        Ok(()) => Ok(Some(name)),
        Err(shm_core::Error::NotFound { .. }) if force => Ok(None),
        Err(e) => Err(Failure::core(&name, &e)),
    }
}

/// A file's identity: its device (major, minor) and inode number, as `/proc/*/maps` shows
/// them. A name can be anything (a newline, a trailing " (deleted)"), an identity cannot be
/// mistaken.
type FileId = (u64, u64, u64);

/// The identity of an open file, from `fstat`.
fn file_id(file: &File) -> std::io::Result<FileId> {
    let meta = file.metadata()?;
    let dev = meta.dev();
    // The Linux encoding of `dev_t` (glibc's `major` and `minor`).
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x00ff);
    Ok((major, minor, meta.ino()))
}

/// The identity of the file a line of `/proc/PID/maps` maps (`address perms offset dev inode
/// path`); `None` for anonymous memory.
fn mapped_id(line: &str) -> Option<FileId> {
    let mut fields = line.split_ascii_whitespace();
    let dev = fields.nth(3)?;
    let inode: u64 = fields.next()?.parse().ok()?;
    let (major, minor) = dev.split_once(':')?;
    let major = u64::from_str_radix(major, 16).ok()?;
    let minor = u64::from_str_radix(minor, 16).ok()?;
    (inode != 0).then_some((major, minor, inode))
}

/// The processes that map each file, by identity, and the processes whose maps could not be
/// read (with why).
#[derive(Default)]
struct Mappings {
    by_id: BTreeMap<FileId, Vec<u32>>,
    unreadable: Vec<(u32, String)>,
}

/// Reads /proc/*/maps of every process but this one.
fn mappings() -> Mappings {
    let mut m = Mappings::default();
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        m.unreadable.push((0, "/proc is not readable".into()));
        return m;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            Ok(maps) => {
                for id in maps.lines().filter_map(mapped_id) {
                    let pids = m.by_id.entry(id).or_default();
                    if !pids.contains(&pid) {
                        pids.push(pid);
                    }
                }
            }
            // The process exited meanwhile: it maps nothing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => m.unreadable.push((pid, e.to_string())),
        }
    }
    m
}

/// "pid 1, 2"
fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A segment `gc` means to remove: its file, opened read-write, and that file's identity. One
/// at a time: `gc` keeps only the identity of each between its scan and its removals, so that
/// any number of dead segments never takes more than a few descriptors.
struct Candidate {
    file: File,
    id: FileId,
}

impl Candidate {
    /// Opens segment `name`'s file read-write (a lease needs a writable descriptor), without
    /// following a link or blocking on a FIFO.
    fn open(name: &str) -> std::io::Result<Candidate> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path_of(name))?;
        let id = file_id(&file)?;
        Ok(Candidate { file, id })
    }

    /// Takes the segment's writer lease on this descriptor (an open-file-description lock on
    /// byte 0, as docs/segment-format.md says): while `gc` holds it no writer can take the
    /// segment over and no creator can recover it. `Ok(false)` if someone holds it.
    fn take_writer_lease(&self) -> std::io::Result<bool> {
        // SAFETY: `flock` is a plain C struct of integers, for which all-zero bytes are valid.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = 0;
        fl.l_len = 1;
        // SAFETY: the descriptor is open for as long as `self`, and `fl` is a valid `flock`
        // that outlives the call.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
            _ => Err(e),
        }
    }

    /// The native-endian header word of `N` bytes at `offset`, read from the file (no mapping:
    /// `gc` must not be one of the processes that map it).
    fn word<const N: usize>(&self, offset: u64) -> std::io::Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.file.read_exact_at(&mut bytes, offset)?;
        Ok(bytes)
    }

    /// Whether the file still holds a ready segment of this format.
    fn ready(&self) -> std::io::Result<bool> {
        let magic = u64::from_ne_bytes(self.word(offset::MAGIC)?);
        let state = u32::from_ne_bytes(self.word(offset::STATE)?);
        Ok(magic == MAGIC && state == STATE_READY)
    }

    /// The last writer's process id, as the header says.
    fn writer_pid(&self) -> u32 {
        self.word(offset::WRITER_PID)
            .map(u32::from_ne_bytes)
            .unwrap_or(0)
    }

    /// Removes segment `name` if it is still the dead, unmapped segment scanned: takes its
    /// writer lease, checks it is still ready, that no process maps it now, and that the name
    /// still refers to this file, then unlinks the name. The reason it was kept otherwise.
    fn remove(&self, name: &str) -> Result<(), String> {
        match self.take_writer_lease() {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "a writer (pid {}) took it over meanwhile",
                    self.writer_pid()
                ))
            }
            Err(e) => return Err(format!("could not take its writer lease: {e}")),
        }
        match self.ready() {
            Ok(true) => {}
            Ok(false) => return Err("it is being created again".into()),
            Err(e) => return Err(format!("could not read its header: {e}")),
        }
        if let Some(pids) = mappings().by_id.get(&self.id) {
            return Err(format!("pid {} mapped it after the scan", pid_list(pids)));
        }
        match Candidate::open(name) {
            Ok(now) if now.id == self.id => {}
            Ok(_) => return Err("the name refers to another segment now".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("another process removed it meanwhile".into())
            }
            Err(e) => return Err(format!("could not open it again: {e}")),
        }
        match shm_core::remove(name) {
            Ok(()) => Ok(()),
            Err(shm_core::Error::NotFound { .. }) => {
                Err("another process removed it meanwhile".into())
            }
            Err(e) => Err(format!("could not remove it: {e}")),
        }
    }
}

/// What `gc` decided for one segment.
struct Decision {
    name: String,
    remove: bool,
    reason: String,
    /// The identity of the file to remove, as scanned (when `remove`).
    candidate: Option<FileId>,
}

/// Test hook: with `SHM_GC_TEST_PAUSE` set to a directory, `gc` creates `scanned` in it once
/// it has decided, and waits (at most a minute) for `go` to appear before it removes anything,
/// so that a test can act between the scan and the removals deterministically.
fn pause_after_scan() {
    let Some(dir) = std::env::var_os("SHM_GC_TEST_PAUSE") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::write(dir.join("scanned"), b"");
    for _ in 0..6000 {
        if dir.join("go").exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether the lane segment `lane` has a live producer or is mapped by a process.
fn lane_in_use(lane: &str, maps: &Mappings) -> bool {
    if let Status::Ours(info) = scan::classify(lane) {
        if info.segment.writer().alive() {
            return true;
        }
    }
    Candidate::open(lane).is_ok_and(|c| maps.by_id.contains_key(&c.id))
}

/// Runs `shm gc`.
pub fn run(args: &GcArgs) -> Outcome {
    let prefix = scan::normalize_prefix(args.prefix.as_deref());
    let entries = scan::scan(prefix.as_deref())
        .map_err(|e| Failure::new(exit::OTHER, format!("reading /dev/shm: {e}")))?;
    let maps = mappings();
    let mut decisions = Vec::new();
    for e in entries {
        let (remove, reason, candidate) = match &e.status {
            Status::Ours(info) if info.segment.writer().alive() => (
                false,
                format!("writer pid {} is alive", info.segment.writer().pid()),
                None,
            ),
            // A multi-producer stream's directory has no writer after its creation: it stays
            // while any of its lanes is in use (a live producer, or mapped by a reader).
            Status::Ours(scan::Info {
                lanes: Some(l), ..
            }) if l.lane_names().iter().any(|lane| lane_in_use(lane, &maps)) => (
                false,
                "a lane is in use".to_string(),
                None,
            ),
            Status::Ours(info) => match Candidate::open(&e.name) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => (
                    false,
                    format!(
                        "writer pid {} is dead, but it cannot be opened for writing to take its lease: {err}",
                        info.segment.writer().pid()
                    ),
                    None,
                ),
                Ok(c) => match maps.by_id.get(&c.id) {
                    Some(pids) => (
                        false,
                        format!(
                            "writer pid {} is dead, but mapped by pid {}",
                            info.segment.writer().pid(),
                            pid_list(pids)
                        ),
                        None,
                    ),
                    None => (
                        true,
                        format!(
                            "writer pid {} is dead (epoch {}) and no process maps it",
                            info.segment.writer().pid(), info.segment.writer().epoch()
                        ),
                        Some(c.id),
                    ),
                },
            },
            Status::Damaged(why) => (
                false,
                format!("damaged ({why}); check it with `shm check`, remove it with `shm rm`"),
                None,
            ),
            // Not ours: never a candidate, and not worth a line.
            Status::Unreadable(_) | Status::Foreign(_) => continue,
        };
        decisions.push(Decision {
            name: e.name,
            remove,
            reason,
            candidate,
        });
    }
    if !args.dry_run {
        pause_after_scan();
        for d in decisions.iter_mut().filter(|d| d.remove) {
            // Between the scan and now a writer may have taken it over, a reader mapped it, or
            // a creator made a new segment under the name: look again, holding its lease.
            let Some(id) = d.candidate.take() else {
                continue;
            };
            let removed = match Candidate::open(&d.name) {
                Ok(c) if c.id == id => c.remove(&d.name),
                Ok(_) => Err("the name refers to another segment now".to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err("another process removed it meanwhile".to_string())
                }
                Err(e) => Err(format!("could not open it again: {e}")),
            };
            if let Err(why) = removed {
                d.remove = false;
                d.reason = why;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let list = |remove: bool| {
            Json::Array(
                decisions
                    .iter()
                    .filter(|d| d.remove == remove)
                    .map(|d| {
                        Json::object()
                            .with("name", d.name.as_str())
                            .with("reason", d.reason.as_str())
                    })
                    .collect(),
            )
        };
        let unreadable = Json::Array(
            maps.unreadable
                .iter()
                .map(|(pid, why)| Json::object().with("pid", *pid).with("error", why.as_str()))
                .collect(),
        );
        let j = Json::object()
            .with("dry_run", args.dry_run)
            .with("removed", list(true))
            .with("kept", list(false))
            .with("unreadable_maps", unreadable);
        writeln!(out, "{}", j.pretty())?;
    } else {
        let style = Style::for_stdout();
        let width = decisions.iter().map(|d| d.name.len()).max().unwrap_or(0);
        for d in &decisions {
            let verb = match (d.remove, args.dry_run) {
                (true, true) => style.warn("would remove"),
                (true, false) => style.bad("removed     "),
                (false, _) => style.good("kept        "),
            };
            writeln!(out, "{verb}  {:<width$}  {}", d.name, d.reason)?;
        }
        if decisions.is_empty() {
            writeln!(out, "no segments")?;
        }
        if !maps.unreadable.is_empty() {
            let pids: Vec<String> = maps
                .unreadable
                .iter()
                .map(|(pid, why)| format!("{pid} ({why})"))
                .collect();
            writeln!(
                out,
                "{} could not read the memory maps of {} process(es): {}; a segment only they map counts as unmapped",
                style.warn("note:"),
                pids.len(),
                pids.join(", ")
            )?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
