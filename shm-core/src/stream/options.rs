//! The [`Options`] builder's calls for streams and queues (mode, backend and ready wait apply
//! as for shared state; the slot count does not: a stream has one slot per message of its
//! capacity).

use super::reader::Start;
use super::{QueueConsumer, QueueProducer, RawStreamReader, StreamReader, StreamWriter};
use crate::error::Result;
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
        StreamWriter::create(self.chosen_backend(), name, &self.make(), capacity)
    }

    /// Opens the stream `name` as its writer: takes the writer lease (a new epoch) and
    /// continues the message numbering, or fails with
    /// [`WriterBusy`](crate::Error::WriterBusy) while another live writer holds it.
    pub fn open_stream_writer<T: SharedState>(&self, name: &str) -> Result<StreamWriter<T>> {
        StreamWriter::open(self.chosen_backend(), name, self.make().ready_wait)
    }

    /// Subscribes to the stream `name`: the reader receives the messages sent from now on.
    pub fn subscribe<T: SharedState>(&self, name: &str) -> Result<StreamReader<T>> {
        StreamReader::open_with(
            self.chosen_backend(),
            name,
            self.make().ready_wait,
            Start::Newest,
        )
    }

    /// Subscribes to the stream `name` from the oldest message it still holds.
    pub fn subscribe_from_oldest<T: SharedState>(&self, name: &str) -> Result<StreamReader<T>> {
        StreamReader::open_with(
            self.chosen_backend(),
            name,
            self.make().ready_wait,
            Start::Oldest,
        )
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
        QueueProducer::create(self.chosen_backend(), name, &self.make(), capacity)
    }

    /// Opens the queue `name` as its producer (a takeover: a new epoch), or fails with
    /// [`WriterBusy`](crate::Error::WriterBusy) while another live producer holds it.
    pub fn open_queue_producer<T: SharedState>(&self, name: &str) -> Result<QueueProducer<T>> {
        QueueProducer::open(self.chosen_backend(), name, self.make().ready_wait)
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
        RawStreamReader::open_with(
            self.chosen_backend(),
            name,
            self.make().ready_wait,
            Start::Newest,
        )
    }

    /// [`subscribe_raw`](Self::subscribe_raw) from the oldest message the stream still holds
    /// (on a queue, the oldest not taken yet).
    pub fn subscribe_raw_from_oldest(&self, name: &str) -> Result<RawStreamReader> {
        RawStreamReader::open_with(
            self.chosen_backend(),
            name,
            self.make().ready_wait,
            Start::Oldest,
        )
    }
}
