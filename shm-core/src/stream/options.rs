//! The [`Options`] builder's calls for streams and queues (mode, backend and ready wait apply
//! as for shared state; the slot count does not: a stream has one slot per message of its
//! capacity).

use super::reader::Start;
use super::{
    expect_ring, QueueConsumer, QueueProducer, RawStreamReader, RawStreamWriter, Sender,
    StreamReader, StreamWriter,
};
use crate::error::Result;
use crate::format::SegmentKind;
use crate::layout::LayoutBuf;
use crate::raw_reader::RawReader;
use crate::segment::Expect;
use crate::{Options, SharedState};

impl Options {
    /// Creates the broadcast stream `name` holding up to `capacity` messages of `T` and
    /// returns its writer. Fails with [`AlreadyExists`](crate::Error::AlreadyExists) if the
    /// name is taken.
    ///
    /// # Panics
    /// If `capacity` is 0 or more than 2^24.
    pub fn create_stream<T: SharedState>(
        &self,
        name: &str,
        capacity: usize,
    ) -> Result<StreamWriter<T>> {
        self.create_ring::<T>(name, SegmentKind::Stream, capacity)
            .map(StreamWriter::of)
    }

    /// Opens the stream `name` as its writer: takes the writer lease (a new epoch) and
    /// continues the message numbering, or fails with
    /// [`WriterBusy`](crate::Error::WriterBusy) while another live writer holds it.
    pub fn open_stream_writer<T: SharedState>(&self, name: &str) -> Result<StreamWriter<T>> {
        self.open_ring_writer::<T>(name, SegmentKind::Stream)
            .map(StreamWriter::of)
    }

    /// Creates the broadcast stream `name` holding up to `capacity` messages described by
    /// `layout` (whose [`layout_hash`](LayoutBuf::layout_hash) becomes the segment's), and
    /// returns its untyped writer; see [`RawStreamWriter`]. `last_sent` is the number of the
    /// last message sent before (0 for a new stream): the first message readers can receive
    /// is `last_sent + 1`, so a mirror of another stream keeps that stream's numbering (a
    /// reader that subscribes from the oldest message before the first one is sent is told
    /// that the numbers the ring could hold before it, up to `capacity`, were lost). Fails
    /// with [`InvalidLayout`](crate::Error::InvalidLayout) if the layout cannot describe a
    /// message or `capacity` is 0 or more than 2^24, and with
    /// [`AlreadyExists`](crate::Error::AlreadyExists) if the name is taken.
    pub fn create_raw_stream(
        &self,
        name: &str,
        layout: &LayoutBuf,
        capacity: usize,
        last_sent: u64,
    ) -> Result<RawStreamWriter> {
        RawStreamWriter::create(
            self.chosen_backend(),
            name,
            &self.make(),
            layout,
            capacity,
            last_sent,
        )
    }

    /// Opens the broadcast stream `name`, which must hold messages of `layout` (by its layout
    /// hash), as its untyped writer: takes the writer lease (a new epoch) and continues the
    /// numbering, or fails with [`WriterBusy`](crate::Error::WriterBusy) while another live
    /// writer holds it.
    pub fn open_raw_stream_writer(
        &self,
        name: &str,
        layout: &LayoutBuf,
    ) -> Result<RawStreamWriter> {
        RawStreamWriter::open(self.chosen_backend(), name, self.make().ready_wait, layout)
    }

    /// Subscribes to the stream `name`: the reader receives the messages sent from now on.
    pub fn subscribe<T: SharedState>(&self, name: &str) -> Result<StreamReader<T>> {
        self.open_ring_reader(name, &expect_ring::<T>(SegmentKind::Stream))
            .map(|raw| StreamReader::from_raw(raw, Start::Newest))
    }

    /// Subscribes to the stream `name` from the oldest message it still holds.
    pub fn subscribe_from_oldest<T: SharedState>(&self, name: &str) -> Result<StreamReader<T>> {
        self.open_ring_reader(name, &expect_ring::<T>(SegmentKind::Stream))
            .map(|raw| StreamReader::from_raw(raw, Start::Oldest))
    }

    /// Creates the queue `name` holding up to `capacity` messages of `T` not yet taken, and
    /// returns its producer. Fails with [`AlreadyExists`](crate::Error::AlreadyExists) if the
    /// name is taken.
    ///
    /// # Panics
    /// If `capacity` is 0 or more than 2^24.
    pub fn create_queue<T: SharedState>(
        &self,
        name: &str,
        capacity: usize,
    ) -> Result<QueueProducer<T>> {
        self.create_ring::<T>(name, SegmentKind::Queue, capacity)
            .map(QueueProducer::of)
    }

    /// Opens the queue `name` as its producer (a takeover: a new epoch), or fails with
    /// [`WriterBusy`](crate::Error::WriterBusy) while another live producer holds it.
    pub fn open_queue_producer<T: SharedState>(&self, name: &str) -> Result<QueueProducer<T>> {
        self.open_ring_writer::<T>(name, SegmentKind::Queue)
            .map(QueueProducer::of)
    }

    /// Opens the queue `name` as its consumer, continuing after the last message taken, or
    /// fails with [`ConsumerBusy`](crate::Error::ConsumerBusy) while another live consumer
    /// has it open.
    pub fn open_consumer<T: SharedState>(&self, name: &str) -> Result<QueueConsumer<T>> {
        QueueConsumer::open(self.chosen_backend(), name, self.make().ready_wait)
    }

    /// Subscribes to the stream `name`, or observes the queue `name`, whatever type its
    /// messages are: see [`RawStreamReader`]. Receives the messages sent from now on.
    pub fn subscribe_raw(&self, name: &str) -> Result<RawStreamReader> {
        self.open_ring_reader(name, &Expect::AnyRing)
            .map(|raw| RawStreamReader::from_raw(raw, Start::Newest))
    }

    /// [`subscribe_raw`](Self::subscribe_raw) from the oldest message the stream still holds
    /// (on a queue, the oldest not taken yet).
    pub fn subscribe_raw_from_oldest(&self, name: &str) -> Result<RawStreamReader> {
        self.open_ring_reader(name, &Expect::AnyRing)
            .map(|raw| RawStreamReader::from_raw(raw, Start::Oldest))
    }

    /// Creates a stream or queue segment (`kind`) for `capacity` messages of `T`.
    fn create_ring<T: SharedState>(
        &self,
        name: &str,
        kind: SegmentKind,
        capacity: usize,
    ) -> Result<Sender> {
        Sender::create::<T>(self.chosen_backend(), name, &self.make(), kind, capacity)
    }

    /// Opens the stream or queue segment (`kind`) of `T` as its writer.
    fn open_ring_writer<T: SharedState>(&self, name: &str, kind: SegmentKind) -> Result<Sender> {
        // A queue producer never adopts: its ring holds one layout, and the consumer is of it.
        let make = self.make();
        let adopt = make.adopt && kind == SegmentKind::Stream;
        Sender::open::<T>(self.chosen_backend(), name, kind, make.ready_wait, adopt)
    }

    /// Opens the stream or queue segment `name` for reading, as `expect` says.
    fn open_ring_reader(&self, name: &str, expect: &Expect) -> Result<RawReader> {
        RawReader::open_with(self.chosen_backend(), name, self.make().ready_wait, expect)
    }
}
