use shm_core::layout::{Kind, Primitive};
use shm_core::SharedState;

type Meters = f64;
type Samples = [u16; 4];

macro_rules! counter {
    () => {
        u64
    };
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Odometry {
    distance: Meters,
    ticks: counter!(),
    samples: Samples,
}

fn main() {
    let fields = Odometry::LAYOUT.fields();
    assert_eq!(fields[0].layout.kind, Kind::Primitive(Primitive::F64));
    assert_eq!(fields[1].layout.kind, Kind::Primitive(Primitive::U64));
    assert_eq!(fields[2].layout.to_string(), "[u16; 4]");
}
