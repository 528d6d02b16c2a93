//! `shm export`: the layout a segment stores, for other languages.
//!
//! Every language comes from the generators in `shm_core::export`, here given the stored
//! [`LayoutBuf`](shm_core::LayoutBuf) rather than a Rust type: the same text as the exports
//! of the Rust type the segment was created with.

use crate::cli::{ExportArgs, Lang};
use crate::output::{exit, Failure, Outcome};
use shm_core::export;
use std::io::Write;

/// Runs `shm export`.
pub fn run(args: &ExportArgs) -> Outcome {
    let (name, r) = crate::inspect::open(&args.name)?;
    let layout = r.layout();
    let text = match args.lang {
        Lang::Json => export::json_of(layout),
        // One header is valid C11 and C++17.
        Lang::C | Lang::Cpp => export::c_header_of(layout),
        Lang::Python => export::python_of(layout),
    }
    .map_err(|e| Failure::new(exit::OTHER, format!("cannot export segment {name:?}: {e}")))?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(exit::OK)
}
