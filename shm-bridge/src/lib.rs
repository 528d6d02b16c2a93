//! Mirrors shared-state segments and broadcast streams to other hosts over Eclipse Zenoh,
//! typed end to end.
//!
//! A bridge exports local segments whose names match its `--export` patterns and imports the
//! remote segments whose `ID/NAME` match its `--import` patterns: the remote segment `NAME` of
//! the bridge `ID` becomes the local segment `/NAME@ID`, created from the remote segment's
//! stored layout (checked as hostile input), so that local readers open it with their own
//! type and get the usual layout check. The mirror's writer lease is held while the remote
//! writer is alive, so [`info().writer().alive()`](shm_core::WriterInfo::alive) on the mirror
//! means "the writer on the other host is alive". See `docs/bridge.md` for the key
//! expressions, what each failure looks like and how long it takes to show.
//!
//! ```no_run
//! use std::sync::{atomic::AtomicBool, Arc};
//! let config = shm_bridge::Config {
//!     id: "a".into(),
//!     listen: vec!["tcp/0.0.0.0:7447".into()],
//!     export: vec!["/robot-*".into()],
//!     ..shm_bridge::Config::default()
//! };
//! let stop = Arc::new(AtomicBool::new(false));
//! shm_bridge::run(config, stop)?;
//! # Ok::<(), shm_bridge::BridgeError>(())
//! ```

mod export;
pub mod glob;
mod import;
mod log;
pub mod wire;

pub use export::{SCAN_EVERY, WAIT_SLICE};
pub use import::{mirror_name, DEFAULT_MIRROR_NAME, DISCOVER_EVERY};
pub use log::Log;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What a bridge does: the command line's flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// This host's id in key expressions (`PREFIX/ID/NAME/...`) and in mirror names
    /// (`/NAME@ID` on the importing host).
    pub id: String,
    /// Zenoh endpoints to listen on (`tcp/HOST:PORT`).
    pub listen: Vec<String>,
    /// Zenoh endpoints to connect to.
    pub connect: Vec<String>,
    /// Patterns of local segment names to export (`/robot-*`).
    pub export: Vec<String>,
    /// Patterns of remote segments to import (`a/robot-*`).
    pub import: Vec<String>,
    /// Patterns of exported streams whose messages Zenoh may drop under congestion (the
    /// readers on the far side count them in `Lagged`) rather than block the exporter (the
    /// default: lossless while the network keeps up).
    pub lossy: Vec<String>,
    /// A Zenoh configuration file (json5), passed through; `listen` and `connect` are applied
    /// on top of it.
    pub zenoh_config: Option<PathBuf>,
    /// The first chunk of every key expression (default `shm`).
    pub prefix: String,
    /// How mirrors are named: `{name}` (the remote segment's name without its slash) and
    /// `{id}` (the remote host's id) replaced; default [`DEFAULT_MIRROR_NAME`], `/{name}@{id}`.
    /// It must start with `/`, hold both and an `@` (so that no bridge exports a mirror).
    pub mirror_name: String,
    /// The largest mirror this bridge creates, in bytes (default 256 MiB): a remote peer
    /// cannot make it allocate more.
    pub max_mirror_bytes: u64,
    /// How long the exporter keeps looking at its states' version words after publishing
    /// one, before it sleeps on their futexes (default zero: it sleeps at once). A writer that
    /// publishes again within this time is seen without a wake-up, at the cost of a core kept
    /// busy meanwhile; see `docs/bridge.md` ("Latency").
    pub spin: std::time::Duration,
    /// Log errors only.
    pub quiet: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: String::new(),
            listen: Vec::new(),
            connect: Vec::new(),
            export: Vec::new(),
            import: Vec::new(),
            lossy: Vec::new(),
            zenoh_config: None,
            prefix: "shm".into(),
            mirror_name: DEFAULT_MIRROR_NAME.into(),
            max_mirror_bytes: 256 << 20,
            spin: std::time::Duration::ZERO,
            quiet: false,
        }
    }
}

/// Why a bridge could not start.
#[derive(Debug)]
pub enum BridgeError {
    /// The configuration is invalid (says what).
    Config(String),
    /// Zenoh refused the configuration or could not open its session.
    Zenoh(zenoh::Error),
}

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BridgeError::Config(what) => write!(f, "invalid configuration: {what}"),
            BridgeError::Zenoh(_) => f.write_str("cannot open the zenoh session"),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Zenoh(e) => Some(e.as_ref()),
            BridgeError::Config(_) => None,
        }
    }
}

/// What every worker thread shares.
struct Shared {
    config: Config,
    session: zenoh::Session,
    stop: Arc<AtomicBool>,
    log: Log,
}

impl Shared {
    /// The key expression of this host's segment `name`'s `what`.
    fn key(&self, name: &str, what: &str) -> String {
        wire::key(&self.config.prefix, &self.config.id, name, what)
    }

    /// The key expression of host `id`'s segment `name`'s `what`.
    fn remote_key(&self, id: &str, name: &str, what: &str) -> String {
        wire::key(&self.config.prefix, id, name, what)
    }
}

/// The Zenoh configuration `config` asks for: the file if one is given (untouched), else the
/// bridge's defaults (peer mode, no multicast scouting, no gossip, no endpoint but the
/// configured ones); then the `listen` and `connect` endpoints on top.
pub fn zenoh_config(config: &Config) -> Result<zenoh::Config, BridgeError> {
    let mut z = match &config.zenoh_config {
        Some(path) => zenoh::Config::from_file(path).map_err(BridgeError::Zenoh)?,
        None => {
            let mut z = zenoh::Config::default();
            for (key, value) in [
                ("mode", r#""peer""#),
                ("scouting/multicast/enabled", "false"),
                ("scouting/gossip/enabled", "false"),
                ("listen/endpoints", "[]"),
                ("connect/endpoints", "[]"),
            ] {
                z.insert_json5(key, value).map_err(BridgeError::Zenoh)?;
            }
            z
        }
    };
    let list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", quoted.join(","))
    };
    if !config.listen.is_empty() {
        z.insert_json5("listen/endpoints", &list(&config.listen))
            .map_err(BridgeError::Zenoh)?;
    }
    if !config.connect.is_empty() {
        z.insert_json5("connect/endpoints", &list(&config.connect))
            .map_err(BridgeError::Zenoh)?;
    }
    Ok(z)
}

/// Checks a configuration before anything starts.
fn check(config: &Config) -> Result<(), BridgeError> {
    if !wire::is_key_chunk(&config.id) || config.id.contains('@') {
        return Err(BridgeError::Config(format!(
            "the id `{}` must be a non-empty key expression chunk: no `/`, `@`, `*`, `$`, `?` or `#`",
            config.id
        )));
    }
    if !wire::is_key_chunk(&config.prefix) {
        return Err(BridgeError::Config(format!(
            "the prefix `{}` must be one key expression chunk",
            config.prefix
        )));
    }
    let m = &config.mirror_name;
    if !m.starts_with('/') || !m.contains("{name}") || !m.contains("{id}") || !m.contains('@') {
        return Err(BridgeError::Config(format!(
            "the mirror name rule `{m}` must start with `/` and hold `{{name}}`, `{{id}}` and an `@` \
             (no bridge exports a name with `@`, so mirrors are never exported again)"
        )));
    }
    for g in &config.export {
        if !g.starts_with('/') {
            return Err(BridgeError::Config(format!(
                "the export pattern `{g}` must start with `/`, as segment names do"
            )));
        }
    }
    for g in &config.import {
        if g.split('/').count() != 2 {
            return Err(BridgeError::Config(format!(
                "the import pattern `{g}` must be `ID/NAME` (for example `a/robot-*`)"
            )));
        }
    }
    Ok(())
}

/// Runs a bridge until `stop` is set (the binary sets it on SIGINT and SIGTERM), then removes
/// the mirrors it holds and returns.
pub fn run(config: Config, stop: Arc<AtomicBool>) -> Result<(), BridgeError> {
    check(&config)?;
    let log = Log::new(&config.id, config.quiet);
    let z = zenoh_config(&config)?;
    let session = zenoh::Wait::wait(zenoh::open(z)).map_err(BridgeError::Zenoh)?;
    log.info(format_args!("ready"));
    let shared = Arc::new(Shared {
        config,
        session,
        stop,
        log,
    });
    let exporter = (!shared.config.export.is_empty()).then(|| {
        let s = shared.clone();
        std::thread::spawn(move || export::run(s))
    });
    let importer = (!shared.config.import.is_empty()).then(|| {
        let s = shared.clone();
        std::thread::Builder::new()
            .name("import".into())
            .spawn(move || import::run(s))
    });
    let importer = importer.and_then(|spawned| {
        spawned
            .map_err(|e| {
                shared
                    .log
                    .error(format_args!("cannot start the importer's thread: {e}"))
            })
            .ok()
    });
    // A bridge that neither exports nor imports still serves as a Zenoh peer until stopped.
    while !shared.stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for t in [exporter, importer].into_iter().flatten() {
        let _ = t.join();
    }
    let _ = zenoh::Wait::wait(shared.session.close());
    shared.log.info(format_args!("stopped"));
    Ok(())
}
