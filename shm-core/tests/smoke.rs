use shm_core::SharedState;
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Telemetry { tick: u64, pos: [f64; 3], status: u32, flags: u32 }
#[test]
fn smoke() {
    let name = format!("/smoke-{}", std::process::id());
    let init = Telemetry { tick: 0, pos: [1.0, 2.0, 3.0], status: 7, flags: 0 };
    let mut w = Telemetry::create(&name, &init).unwrap();
    let r = Telemetry::open(&name).unwrap();
    assert_eq!(r.read(), init);
    w.update(|t| t.tick += 1);
    assert_eq!(r.read().tick, 1);
    assert_eq!(r.version(), 1);
    assert!(r.writer_alive());
    assert!(matches!(Telemetry::open_writer(&name), Err(shm_core::Error::WriterBusy { .. })));
    drop(w);
    assert!(!r.writer_alive());
    let w2 = Telemetry::open_writer(&name).unwrap();
    assert_eq!(w2.epoch(), 2);
    assert_eq!(w2.get().tick, 1);
    shm_core::remove(&name).unwrap();
}
