use core::mem::{offset_of, size_of};
use shm_core::layout::{Kind, Primitive};
use shm_core::SharedState;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Imu {
    timestamp: f64,
    accel: [f32; 3],
    temperature: f32,
    gyro: [f64; 3],
}

fn main() {
    let layout = Imu::LAYOUT;
    assert_eq!(layout.size, size_of::<Imu>());
    assert_eq!(layout.size, 8 + 12 + 4 + 24);
    let fields = layout.fields();
    assert_eq!(fields[0].layout.kind, Kind::Primitive(Primitive::F64));
    assert_eq!(fields[2].layout.kind, Kind::Primitive(Primitive::F32));
    assert_eq!(fields[3].offset, offset_of!(Imu, gyro));
    assert_eq!(fields[1].layout.to_string(), "[f32; 3]");

    let imu = Imu {
        timestamp: 1.5,
        accel: [0.0, -9.81, f32::NAN],
        temperature: 21.25,
        gyro: [f64::INFINITY, 0.0, -0.0],
    };
    let copy = imu;
    assert_eq!(copy.timestamp, 1.5);
    assert!(copy.accel[2].is_nan());
}
