//! The derive's output resolves without any prelude and raises no lint in the user's crate.
#![no_implicit_prelude]
#![deny(warnings, deprecated, unused_qualifications)]

mod shapes {
    #[derive(::shm_core::SharedState, ::core::clone::Clone, ::core::marker::Copy)]
    #[repr(C, align(16))]
    #[shm(name = "Telemetry")]
    pub struct Telemetry {
        pub count: u64,
        pub samples: [u16; 4],
        pub label: ::shm_core::FixedStr<8>,
        pub inner: Inner,
        pub r#type: u32,
        pub _pad: [u8; 24],
    }

    #[derive(::shm_core::SharedState, ::core::clone::Clone, ::core::marker::Copy)]
    #[repr(C)]
    pub struct Inner {
        pub flag: ::shm_core::ShmBool,
        pub _pad: [u8; 7],
    }
}

fn main() {
    use ::shm_core::SharedState;
    let layout = <shapes::Telemetry as SharedState>::LAYOUT;
    ::std::assert_eq!(layout.size, 64);
    ::std::assert_eq!(layout.fields().len(), 6);
    ::std::assert_eq!(layout.fields()[4].name, "type");
}
