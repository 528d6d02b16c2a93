//! `shm watch`: a segment's value, live, updated on every change through the futex wait.

use crate::cli::WatchArgs;
use crate::inspect;
use crate::json::Json;
use crate::output::{exit, stdout_is_terminal, Failure, Outcome, Style};
use crate::render;
use crate::scan::{self, Opened};
use shm_core::layout::Value;
use shm_core::{Error, Options, RawReader, RawStreamReader};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest wait before looking at the stop flag and the output again.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Shortest time between two redraws on a terminal (about 30 frames per second).
const FRAME: Duration = Duration::from_millis(33);
/// Window over which the update rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Set by the SIGINT and SIGTERM handler.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM set [`STOP`] instead of killing the process, without
/// `SA_RESTART`, so that a futex wait in progress returns early.
fn install_signal_handlers() -> Result<(), Failure> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` is plain old data for which all-zero bytes are valid (an empty
        // mask, no flags).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `action` is a valid, initialized `sigaction` whose handler only performs an
        // atomic store (async-signal-safe); a null old-action pointer is allowed.
        let rc = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(Failure::new(
                exit::OTHER,
                format!(
                    "installing a signal handler: {}",
                    std::io::Error::last_os_error()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether the reader of our stdout went away (a pipe whose read end is closed reports
/// `POLLERR`), so that a watch with no updates to print still ends.
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: `fd` is one valid `pollfd` that outlives the call; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// The terminal's width in columns, if stdout is a terminal that says.
fn terminal_width() -> Option<usize> {
    // SAFETY: `winsize` is plain old data for which all-zero bytes are valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `winsize` into `ws`, which is valid and outlives the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// Published versions per second, over the last [`RATE_WINDOW`].
struct Rate {
    seen: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn observe(&mut self, now: Instant, version: u64) {
        self.seen.push_back((now, version));
        while self
            .seen
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.seen.pop_front();
        }
    }

    fn per_second(&self, now: Instant) -> f64 {
        match (self.seen.front(), self.seen.back()) {
            (Some((t0, v0)), Some((_, v1))) if v1 > v0 => {
                let span = now.duration_since(*t0).max(Duration::from_millis(1));
                (v1 - v0) as f64 / span.as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// The rows to show: the selected paths, or every row of the value.
fn selected<'a>(value: &'a Value, fields: &[String]) -> Vec<(String, &'a Value)> {
    if fields.is_empty() {
        render::rows(value)
    } else {
        fields
            .iter()
            .filter_map(|f| render::get(value, f).map(|v| (f.clone(), v)))
            .collect()
    }
}

/// Runs `shm watch`.
pub fn run(args: &WatchArgs) -> Outcome {
    let (name, opened) = inspect::open(&args.name)?;
    // What the fields are checked against: the current value, or an all-zero message.
    let first = match &opened {
        Opened::State(r) => Some(inspect::read(&name, r)?),
        Opened::Ring(_) => None,
        Opened::Lanes(l) => {
            return Err(Failure::new(
                exit::USAGE,
                format!(
                    "{name} is a multi-producer {} of {} lanes: watch one lane, e.g. {}",
                    l.lane_kind,
                    l.lanes,
                    shm_core::stream::lanes::lane_name(&name, 0)
                ),
            ))
        }
    };
    let layout = opened.layout();
    let sample = match &first {
        Some((_, bytes)) => layout.decode_value_lossy(bytes),
        None => layout.decode_value_lossy(&vec![0u8; layout.size as usize]),
    };
    let unknown: Vec<&String> = args
        .fields
        .iter()
        .filter(|f| render::get(&sample, f).is_none())
        .collect();
    if let Some(f) = unknown.first() {
        let known: Vec<String> = render::rows(&sample).into_iter().map(|(p, _)| p).collect();
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "no field {f:?} in `{}`; fields: {}",
                scan::type_name(layout),
                known.join(", ")
            ),
        ));
    }
    install_signal_handlers()?;
    let mut view = View {
        name: &name,
        reader: &opened,
        unit: if first.is_some() {
            "version"
        } else {
            "message"
        },
        lost: 0,
        fields: &args.fields,
        json: args.json,
        terminal: stdout_is_terminal() && !args.json,
        style: Style::for_stdout(),
        width: terminal_width().unwrap_or(80),
        drawn_lines: 0,
        rate: Rate {
            seen: VecDeque::new(),
        },
        out: std::io::stdout().lock(),
    };
    let result = match (&opened, first) {
        (Opened::State(r), Some((version, _))) => view.run(r, version, sample, args.count),
        (Opened::Ring(_), _) => {
            let subscribe = |n: &str| {
                let o = Options::new();
                if args.from_oldest {
                    o.subscribe_raw_from_oldest(n)
                } else {
                    o.subscribe_raw(n)
                }
            };
            match subscribe(&name) {
                Ok(rx) => view.run_ring(rx, args.count),
                Err(e) => Err(Failure::core(&name, &e)),
            }
        }
        (Opened::State(_), None) => unreachable!("a state segment's value was read"),
        (Opened::Lanes(_), _) => unreachable!("refused above"),
    };
    if view.terminal {
        // Show the cursor again, whatever happened.
        let _ = write!(view.out, "\x1b[?25h");
        let _ = view.out.flush();
    }
    result
}

/// What `watch` prints to, and how.
struct View<'a> {
    name: &'a str,
    reader: &'a Opened,
    /// What the counter shown counts: `version` (state) or `message` (streams and queues).
    unit: &'static str,
    /// Messages lost so far (streams and queues).
    lost: u64,
    fields: &'a [String],
    json: bool,
    terminal: bool,
    style: Style,
    width: usize,
    /// Lines of the last frame, to move back over on a terminal.
    drawn_lines: usize,
    rate: Rate,
    out: std::io::StdoutLock<'static>,
}

impl View<'_> {
    fn run(
        &mut self,
        reader: &RawReader,
        mut version: u64,
        mut value: Value,
        count: Option<u64>,
    ) -> Outcome {
        if self.terminal {
            write!(self.out, "\x1b[?25l")?;
        }
        let mut printed = 0u64;
        let mut last_frame: Option<Instant> = None;
        loop {
            let now = Instant::now();
            self.rate.observe(now, version);
            self.show(version, &value, now)?;
            printed += 1;
            if count.is_some_and(|c| printed >= c) {
                break;
            }
            if self.terminal {
                // Coalesce: at most one frame per FRAME; the next frame shows the latest value.
                if let Some(left) = last_frame.and_then(|t| (t + FRAME).checked_duration_since(now))
                {
                    std::thread::sleep(left);
                }
                last_frame = Some(Instant::now());
            }
            // Wait for a newer version, in slices, so that Ctrl-C and a closed output end it.
            loop {
                if STOP.load(Ordering::Relaxed) || (!self.terminal && stdout_closed()) {
                    return self.finish();
                }
                match reader.wait_for_update(version, WAIT_SLICE) {
                    Ok(_) => break,
                    Err(shm_core::Error::Timeout) => {
                        if self.terminal {
                            // Keep the rate and the writer's liveness current while idle.
                            self.show(version, &value, Instant::now())?;
                        }
                    }
                    Err(e) => return Err(Failure::core(self.name, &e)),
                }
            }
            let (v, bytes) = inspect::read(self.name, reader)?;
            version = v;
            value = reader.layout().decode_value_lossy(&bytes);
        }
        self.finish()
    }

    /// Shows every message of a stream or queue as it arrives (on a terminal, the latest at
    /// most once per frame), and every gap; stops after `count` messages.
    fn run_ring(&mut self, mut rx: RawStreamReader, count: Option<u64>) -> Outcome {
        if self.terminal {
            write!(self.out, "\x1b[?25l")?;
        }
        let mut bytes = vec![0u8; rx.payload_size()];
        let mut printed = 0u64;
        let mut shown: Option<(u64, Value)> = None;
        let mut last_frame: Option<Instant> = None;
        loop {
            if STOP.load(Ordering::Relaxed) || (!self.terminal && stdout_closed()) {
                break;
            }
            match rx.recv_timeout(&mut bytes, WAIT_SLICE) {
                Ok(number) => {
                    let now = Instant::now();
                    self.rate.observe(now, number);
                    let value = rx.layout().decode_value_lossy(&bytes);
                    printed += 1;
                    let due = last_frame.is_none_or(|t| now.duration_since(t) >= FRAME);
                    let done = count.is_some_and(|c| printed >= c);
                    if !self.terminal || due || done {
                        self.show(number, &value, now)?;
                        last_frame = Some(now);
                        shown = None;
                    } else {
                        shown = Some((number, value));
                    }
                    if done {
                        break;
                    }
                }
                Err(Error::Lagged { missed }) => {
                    self.lost += missed;
                    if self.json {
                        let j = Json::object().with("name", self.name).with("lost", missed);
                        writeln!(self.out, "{}", j.compact())?;
                    } else if !self.terminal {
                        writeln!(self.out, "lost={missed}")?;
                    }
                }
                Err(Error::Timeout) => {
                    if let (true, Some((number, value))) = (self.terminal, shown.take()) {
                        self.show(number, &value, Instant::now())?;
                        last_frame = Some(Instant::now());
                    }
                }
                Err(e) => return Err(Failure::core(self.name, &e)),
            }
        }
        if let (true, Some((number, value))) = (self.terminal, shown.take()) {
            self.show(number, &value, Instant::now())?;
        }
        self.finish()
    }

    fn finish(&mut self) -> Outcome {
        self.out.flush()?;
        Ok(exit::OK)
    }

    fn show(&mut self, version: u64, value: &Value, now: Instant) -> Result<(), Failure> {
        let rows = selected(value, self.fields);
        if self.json {
            let mut j = Json::object()
                .with("name", self.name)
                .with(self.unit, version);
            if self.fields.is_empty() {
                j.push("value", render::to_json(value));
            } else {
                j.push(
                    "fields",
                    Json::Object(
                        rows.iter()
                            .map(|(p, v)| (p.clone(), render::to_json(v)))
                            .collect(),
                    ),
                );
            }
            writeln!(self.out, "{}", j.compact())?;
        } else if self.terminal {
            self.draw(version, &rows, now)?;
        } else {
            let mut line = format!("{}={version}", self.unit);
            for (path, v) in &rows {
                let path = if path.is_empty() { "value" } else { path };
                line.push_str(&format!("  {path}={}", render::inline(v)));
            }
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// Redraws the frame in place: back up over the last frame, rewrite each line, clear
    /// what is left below.
    fn draw(
        &mut self,
        version: u64,
        rows: &[(String, &Value)],
        now: Instant,
    ) -> Result<(), Failure> {
        let writer = self.reader.info().writer();
        let lost = if self.unit == "message" {
            format!("  {} lost", self.lost)
        } else {
            String::new()
        };
        let header = format!(
            "{}  {}  {} {version}  {:.1} {}s/s{lost}  writer pid {} {}  epoch {}",
            self.name,
            scan::type_name(self.reader.layout()),
            self.unit,
            self.rate.per_second(now),
            if self.unit == "message" {
                "message"
            } else {
                "update"
            },
            writer.pid(),
            if writer.alive() { "alive" } else { "dead" },
            writer.epoch(),
        );
        let width = rows
            .iter()
            .map(|(p, _)| p.chars().count())
            .max()
            .unwrap_or(0);
        let mut lines = vec![self.style.bold(&self.fit(&header)), String::new()];
        for (path, v) in rows {
            let path = if path.is_empty() { "value" } else { path };
            let text = self.fit(&format!("{path:<width$}  = {}", render::inline(v)));
            lines.push(if matches!(v, Value::Invalid { .. }) {
                self.style.warn(&text)
            } else {
                text
            });
        }
        lines.push(self.style.dim("Ctrl-C to stop"));
        let mut frame = String::new();
        if self.drawn_lines > 0 {
            frame.push_str(&format!("\x1b[{}A\r", self.drawn_lines));
        }
        for line in &lines {
            frame.push_str("\x1b[2K");
            frame.push_str(line);
            frame.push('\n');
        }
        frame.push_str("\x1b[J");
        self.out.write_all(frame.as_bytes())?;
        self.drawn_lines = lines.len();
        Ok(())
    }

    /// `line` cut to the terminal's width, so that no line wraps and the redraw stays in place.
    fn fit(&self, line: &str) -> String {
        let max = self.width.saturating_sub(1).max(10);
        if line.chars().count() <= max {
            line.to_string()
        } else {
            let mut cut: String = line.chars().take(max - 1).collect();
            cut.push('…');
            cut
        }
    }
}
