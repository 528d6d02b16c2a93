//! `shm rm` and `shm gc`: removing segments, by name or because their writer is gone.

use crate::cli::{GcArgs, RmArgs};
use crate::json::Json;
use crate::output::{exit, Failure, Outcome, Style};
use crate::scan::{self, Status};
use crate::segment_file::{normalize_name, SegmentFile, MAGIC};
use std::collections::BTreeMap;
use std::io::Write;

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

/// The processes that map each file under /dev/shm, and the processes whose maps could not be
/// read (with why).
#[derive(Default)]
struct Mappings {
    by_path: BTreeMap<String, Vec<u32>>,
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
                for line in maps.lines() {
                    // The path is the sixth column; it may contain spaces, and is followed by
                    // " (deleted)" once its name is gone.
                    let Some(at) = line.find("/dev/shm/") else {
                        continue;
                    };
                    let path = line[at..].trim_end_matches(" (deleted)").to_string();
                    let pids = m.by_path.entry(path).or_default();
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

/// What `gc` decided for one segment.
struct Decision {
    name: String,
    remove: bool,
    reason: String,
}

/// Runs `shm gc`.
pub fn run(args: &GcArgs) -> Outcome {
    let prefix = scan::normalize_prefix(args.prefix.as_deref());
    let entries = scan::scan(prefix.as_deref())
        .map_err(|e| Failure::new(exit::OTHER, format!("reading /dev/shm: {e}")))?;
    let maps = mappings();
    let mut decisions = Vec::new();
    for e in entries {
        let path = crate::segment_file::path_of(&e.name)
            .to_string_lossy()
            .into_owned();
        let (remove, reason) = match &e.status {
            Status::Ours(info) if info.writer_alive => {
                (false, format!("writer pid {} is alive", info.writer_pid))
            }
            Status::Ours(info) => match maps.by_path.get(&path) {
                Some(pids) => (
                    false,
                    format!(
                        "writer pid {} is dead, but mapped by pid {}",
                        info.writer_pid,
                        pids.iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                None => (
                    true,
                    format!(
                        "writer pid {} is dead (epoch {}) and no process maps it",
                        info.writer_pid, info.epoch
                    ),
                ),
            },
            Status::Damaged(why) => (
                false,
                format!("damaged ({why}); check it with `shm check`, remove it with `shm rm`"),
            ),
            // Not ours: never a candidate, and not worth a line.
            Status::Unreadable(_) | Status::Foreign(_) => continue,
        };
        decisions.push(Decision {
            name: e.name,
            remove,
            reason,
        });
    }
    if !args.dry_run {
        for d in decisions.iter_mut().filter(|d| d.remove) {
            // A writer may have taken the segment over since the scan: look again.
            match scan::open_now(&d.name) {
                Ok(r) if r.writer_alive() => {
                    d.remove = false;
                    d.reason = format!("a writer (pid {}) took it over meanwhile", r.writer_pid());
                    continue;
                }
                _ => {}
            }
            if let Err(e) = shm_core::remove(&d.name) {
                d.remove = false;
                d.reason = format!("could not remove it: {e}");
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
