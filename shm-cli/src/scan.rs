//! Finding segments: every file in /dev/shm classified as one of ours (with its header facts),
//! damaged, unreadable or foreign. Shared by `ls` and `gc`.

use crate::segment_file::{SegmentFile, MAGIC, SHM_DIR};
use shm_core::{
    Error, LanesInfo, LayoutBuf, Options, RawReader, RawStreamReader, SegmentInfo, SegmentKind,
};
use std::time::Duration;

/// What a file in /dev/shm is.
#[derive(Debug)]
pub enum Status {
    /// A segment of this format that opens.
    Ours(Info),
    /// Starts with this format's magic but cannot be opened, and why.
    Damaged(String),
    /// Could not be read at all (permission), and why.
    Unreadable(String),
    /// Not a segment of this format, and why.
    Foreign(String),
}

/// One file in /dev/shm.
#[derive(Debug)]
pub struct Entry {
    /// Segment name (`/x` form).
    pub name: String,
    /// What it is.
    pub status: Status,
}

/// A segment opened for reading, whatever it holds.
pub enum Opened {
    /// Shared state: one value, the latest.
    State(RawReader),
    /// A broadcast stream or a queue, read as an observer that takes nothing.
    Ring(RawStreamReader),
    /// The directory of a multi-producer stream or queue: its lanes are segments of their own.
    Lanes(LanesInfo),
}

impl Opened {
    /// The stored layout (of the value, or of one message).
    pub fn layout(&self) -> &LayoutBuf {
        match self {
            Opened::State(r) => r.layout(),
            Opened::Ring(r) => r.layout(),
            Opened::Lanes(l) => &l.layout,
        }
    }

    /// What the segment is and who writes it.
    pub fn info(&self) -> SegmentInfo {
        match self {
            Opened::State(r) => r.info(),
            Opened::Ring(r) => r.info(),
            Opened::Lanes(l) => l.segment.clone(),
        }
    }
}

/// Opens segment `name` of any kind, waiting at most `ready_wait` for a creator to finish.
pub fn open_any(name: &str, ready_wait: Duration) -> shm_core::Result<Opened> {
    let options = Options::new().ready_wait(ready_wait);
    match options.open_raw(name) {
        Err(Error::WrongKind {
            found: SegmentKind::Stream | SegmentKind::Queue,
            ..
        }) => options.subscribe_raw(name).map(Opened::Ring),
        Err(Error::WrongKind {
            found: SegmentKind::Lanes,
            ..
        }) => options.lanes_info(name).map(Opened::Lanes),
        other => other.map(Opened::State),
    }
}

/// Header facts of a segment that opens.
#[derive(Debug, Clone)]
pub struct Info {
    /// What it is and who writes it.
    pub segment: SegmentInfo,
    /// The stored layout's struct name (or its type, if the root is not a struct).
    pub type_name: String,
    /// The publish counter: for a stream or queue, the number of messages sent.
    pub version: u64,
    /// For a queue, the number of messages its consumers took.
    pub taken: Option<u64>,
    /// For the directory of a multi-producer stream or queue: what its lanes are.
    pub lanes: Option<Box<LanesInfo>>,
}

impl Info {
    /// The facts `r` reports.
    pub fn of(r: &Opened) -> Info {
        let (version, taken) = match r {
            Opened::State(r) => (r.version(), None),
            Opened::Ring(r) => (r.sent(), r.taken()),
            Opened::Lanes(_) => (0, None),
        };
        Info {
            segment: r.info(),
            type_name: type_name(r.layout()),
            version,
            taken,
            lanes: match r {
                Opened::Lanes(l) => Some(Box::new(l.clone())),
                _ => None,
            },
        }
    }
}

/// The name to show for a stored layout's type.
pub fn type_name(layout: &LayoutBuf) -> String {
    layout
        .struct_name()
        .map_or_else(|| layout.to_string(), str::to_string)
}

/// Opens `name` without waiting for a segment that is still being created.
pub fn open_now(name: &str) -> shm_core::Result<Opened> {
    open_any(name, Duration::ZERO)
}

/// Classifies the file of segment `name`.
pub fn classify(name: &str) -> Status {
    let file = match SegmentFile::open(name) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Status::Unreadable("permission denied".into())
        }
        Err(e) => return Status::Unreadable(e.to_string()),
    };
    match file.magic() {
        None => return Status::Foreign(format!("{} bytes, too small", file.len())),
        Some(MAGIC) => {}
        Some(0) if file.len() >= crate::segment_file::HEADER_SIZE => {
            // The magic is stored last during creation: a creator may still be at work, or
            // died. Only a segment of this format that opens is ours for certain.
            return Status::Foreign("magic is zero (empty, or a creation never finished)".into());
        }
        Some(m) => return Status::Foreign(format!("magic {m:#018x}")),
    }
    drop(file);
    match open_now(name) {
        Ok(r) => Status::Ours(Info::of(&r)),
        Err(shm_core::Error::PermissionDenied { .. }) => {
            Status::Unreadable("permission denied".into())
        }
        Err(shm_core::Error::NotFound { .. }) => Status::Unreadable("removed meanwhile".into()),
        Err(e) => Status::Damaged(e.to_string()),
    }
}

/// Every regular file in /dev/shm whose name starts with `prefix` (`/x` form), sorted by name.
pub fn scan(prefix: Option<&str>) -> std::io::Result<Vec<Entry>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_file() {
            continue;
        }
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let name = format!("/{file_name}");
        if prefix.is_none_or(|p| name.starts_with(p)) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names
        .into_iter()
        .map(|name| Entry {
            status: classify(&name),
            name,
        })
        .collect())
}

/// What the segment `name` mirrors, by the bridge's naming rule (`docs/bridge.md`): the
/// mirror of segment `NAME` on host `ID` is `/NAME@ID`, so `/robot-pose@a` mirrors
/// `a/robot-pose`. `None` for a name without `@` (or with nothing on one side of it).
pub fn mirror_of(name: &str) -> Option<String> {
    let (segment, host) = name.trim_start_matches('/').rsplit_once('@')?;
    (!segment.is_empty() && !host.is_empty()).then(|| format!("{host}/{segment}"))
}

/// Which multi-producer stream or queue the segment `name` is a lane of, and which lane, if
/// its name says so (`/x.lane-K`, see `shm_core::stream::lanes::lane_name`) and `entries` hold
/// that directory with at least `K + 1` lanes.
pub fn lane_of(name: &str, entries: &[&Entry]) -> Option<(String, usize)> {
    let (dir, lane) = name.rsplit_once(".lane-")?;
    let lane: usize = lane.parse().ok()?;
    entries.iter().find_map(|e| match &e.status {
        Status::Ours(Info { lanes: Some(l), .. }) if e.name == dir && lane < l.lanes => {
            Some((dir.to_string(), lane))
        }
        _ => None,
    })
}

/// What the LANES column of `shm ls` says about `e`: a directory's lanes, or a lane's stream.
pub fn lanes_cell(e: &Entry, entries: &[&Entry]) -> Option<String> {
    if let Status::Ours(Info { lanes: Some(l), .. }) = &e.status {
        return Some(format!(
            "{} {} lanes: {}..{}",
            l.lanes,
            l.lane_kind,
            shm_core::stream::lanes::lane_name(&l.name, 0),
            l.lanes - 1
        ));
    }
    lane_of(&e.name, entries).map(|(dir, lane)| format!("lane {lane} of {dir}"))
}

/// A prefix as given (`x` or `/x`) in the `/x` form names have.
pub fn normalize_prefix(prefix: Option<&str>) -> Option<String> {
    prefix.map(|p| format!("/{}", p.trim_start_matches('/')))
}
