//! [`QueueProducer`] and [`QueueConsumer`]: a queue with backpressure, one producer and one
//! consumer, each message taken exactly once.

use super::{expect_ring, wake_all, Sender};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{Control, SegmentKind};
use crate::info::SegmentInfo;
use crate::payload;
use crate::protocol::stream::{self, Queued};
use crate::protocol::{self, Slots};
use crate::raw_writer::announce_mode;
use crate::segment::Segment;
use crate::sys::{self, Access};
use crate::wait::{self, wait_until, AsyncWait, Deadline, Pace};
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};
use std::task::{Context, Poll};
use std::time::Duration;

fn control(seg: &Segment) -> &Control {
    seg.control().expect("a queue segment has a control line")
}

/// Sends messages of `T` to a queue, which holds at most its capacity of messages the
/// consumer has not taken: [`try_send`](Self::try_send) fails with [`Error::Full`] and
/// [`send`](Self::send) waits, instead of overwriting.
///
/// The producer holds the segment's writer lease, as a [`Writer`](crate::Writer) does; when
/// it is dropped or its process dies, another process takes over with
/// [`SharedState::open_queue_producer`] and continues the numbering: a message whose send was
/// cut short by the death was never delivered, and the new producer's first message takes its
/// number.
pub struct QueueProducer<T: SharedState> {
    tx: Sender,
    /// `consumed` as this producer last loaded it.
    consumed_seen: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T: SharedState> QueueProducer<T> {
    const WORDS: usize = payload::words(size_of::<T>());

    /// The producer of the queue `tx` created or took over.
    pub(crate) fn of(tx: Sender) -> Self {
        QueueProducer {
            tx,
            consumed_seen: 0,
            _type: PhantomData,
        }
    }

    /// Sends `value` if the queue has room, else fails with [`Error::Full`]. Never blocks;
    /// makes no syscall unless the consumer is blocked waiting for a message.
    ///
    /// # Panics
    /// In a process made by `fork` after this producer was made (so do
    /// [`send`](Self::send) and [`send_timeout`](Self::send_timeout)): the copy the child
    /// inherited does not hold the lease, which stayed with the parent.
    #[inline]
    pub fn try_send(&mut self, value: &T) -> Result<()> {
        self.tx.seg.assert_not_inherited();
        let number = self.tx.next();
        let wake = stream::try_send_queued(
            &self.tx.seg,
            number,
            &mut self.consumed_seen,
            Self::WORDS,
            payload::source_of(value),
            announce_mode(),
        )
        .ok_or(Error::Full)?;
        self.tx.sent(number, wake);
        Ok(())
    }

    /// Sends `value`, waiting as long as it takes for room.
    pub fn send(&mut self, value: &T) {
        let sent = self.send_until(value, Deadline::never());
        debug_assert!(sent.is_ok(), "a wait without deadline ends only with room");
    }

    /// Sends `value`, waiting at most `timeout` for room ([`Error::Timeout`]).
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<()> {
        self.send_until(value, Deadline::after(timeout))
    }

    fn send_until(&mut self, value: &T, deadline: Deadline) -> Result<()> {
        loop {
            match self.try_send(value) {
                Err(Error::Full) => {}
                other => return other,
            }
            let seg = &self.tx.seg;
            let c = control(seg);
            let number = self.tx.next();
            stream::wait_for_room(seg, number);
            // The producer's mapping is writable: its checks are SeqCst loads either way.
            if !wait_until(
                &c.space_futex,
                &c.space_waiters,
                true,
                deadline,
                Pace::Stream,
                |_| stream::has_room(seg, number),
            ) {
                return Err(Error::Timeout);
            }
        }
    }

    /// Sends `value`, waiting asynchronously as long as it takes for room.
    ///
    /// Cancellation-safe: the message is sent only when the future completes; dropping it
    /// before sends nothing and cancels its wait. The wait runs on the process's shared wait
    /// engine (see [`RawReader::changed`](crate::RawReader::changed)).
    pub async fn send_async(&mut self, value: &T) -> Result<()> {
        let mut wait = AsyncWait::default();
        std::future::poll_fn(|cx| {
            // Bounded: each turn either returns or saw an armed wait end.
            for _ in 0..1_000_000 {
                match self.try_send(value) {
                    Err(Error::Full) => {}
                    other => return Poll::Ready(other),
                }
                let seg = &self.tx.seg;
                let number = self.tx.next();
                stream::wait_for_room(seg, number);
                let target = wait::Target::space(seg);
                match wait.poll_wait_on(cx, seg, target, None, |_| stream::has_room(seg, number)) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {}
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }

    /// The number of messages sent to this queue since it was created, by this producer and
    /// the producers before it.
    pub fn sent(&self) -> u64 {
        self.tx.sent
    }

    /// The number of messages sent that the consumer has not taken yet.
    pub fn backlog(&self) -> u64 {
        let taken = protocol::load_acquire(&control(&self.tx.seg).consumed);
        self.tx.sent.saturating_sub(taken)
    }

    /// Whether this handle created the queue (as opposed to taking over an existing one).
    pub fn created(&self) -> bool {
        self.tx.created
    }

    /// What the queue is (its capacity in messages is `info().slots()`) and who produces it
    /// (this producer); see [`SegmentInfo`].
    pub fn info(&self) -> SegmentInfo {
        self.tx.seg.info()
    }
}

/// Takes the messages of a queue, each exactly once, in order.
///
/// The number of the last message taken lives in the segment, so a consumer that exits or
/// dies and is opened again ([`SharedState::open_consumer`]) continues with the first message
/// no consumer took. A message is taken when a receive stores the consumer's position (one
/// atomic store, just before the receive returns it): no message is ever returned by two
/// receives, and none is skipped. A consumer killed after that store but before its program
/// handled the message (or the batch, for [`recv_batch`](Self::recv_batch)) does not get it
/// again. One consumer at a time: it holds the queue's consumer lease, a kernel lock the kernel
/// releases with the handle or the process.
pub struct QueueConsumer<T: SharedState> {
    seg: Segment,
    /// The number of the last message taken.
    taken: u64,
    /// `published` as this consumer last loaded it.
    published_seen: u64,
    /// The wait of the [`Stream`](futures_core::Stream) implementation, kept between polls.
    stream_wait: AsyncWait,
    _type: PhantomData<fn() -> T>,
}

impl<T: SharedState> QueueConsumer<T> {
    pub(crate) fn open(backend: &Backend, name: &str, ready_wait: Duration) -> Result<Self> {
        let expect = expect_ring::<T>(SegmentKind::Queue);
        let mut seg = Segment::open(backend, name, Access::ReadWrite, ready_wait, &expect)?;
        if !seg.take_lease(sys::try_lock_consumer)? {
            return Err(Error::ConsumerBusy);
        }
        // The previous consumer's last store: we hold the lease now, nobody else stores it.
        let taken = protocol::load_acquire(&control(&seg).consumed);
        // Commits are made as `raw_writer::announce_mode` says: without a locked instruction
        // once this process is a target of the barrier a producer waiting for room makes.
        sys::register_as_barrier_target();
        // A consumer that died between its last commit and the wake that commit owed left the
        // producer asleep although there is room: wake it (it re-checks, and sleeps again if
        // there is none), as a writer that takes over wakes readers.
        wake_all(&control(&seg).space_futex);
        Ok(QueueConsumer {
            seg,
            taken,
            published_seen: 0,
            stream_wait: AsyncWait::default(),
            _type: PhantomData,
        })
    }

    /// How the queue's stored layout relates to `T`: [`Compat::Exact`](crate::Compat::Exact),
    /// or another version of an appendable `T`, read as a stream reader reads it.
    pub fn compat(&self) -> crate::Compat {
        self.seg.compat()
    }

    /// Copies message `taken + 1 + ahead` into `out` without taking it: `Ok(false)` if it
    /// was not sent yet.
    #[inline]
    fn copy(&mut self, ahead: u64, out: &mut MaybeUninit<T>) -> Result<bool> {
        self.seg.assert_not_inherited();
        let number = self.taken + 1 + ahead;
        let (words, sink) = payload::sink_for(out, self.seg.geometry().payload_size);
        match stream::receive_queued(&self.seg, number, &mut self.published_seen, words, sink) {
            Queued::Message(_) => Ok(true),
            Queued::Empty => Ok(false),
            Queued::Broken => Err(Error::Corrupt {
                what: "a queue slot does not hold the message its number says (a peer broke the protocol)",
            }),
        }
    }

    /// Takes every message up to `number`.
    #[inline]
    fn take(&mut self, number: u64) {
        let taken = core::mem::replace(&mut self.taken, number);
        if stream::commit(&self.seg, taken, number, announce_mode()) {
            super::killed_between_commit_and_wake();
            wake_all(&control(&self.seg).space_futex);
        }
    }

    /// Takes the next message if there is one, without waiting (`Ok(None)` if none).
    ///
    /// # Panics
    /// In a process made by `fork` after this consumer was made (so do every receive): the
    /// copy the child inherited does not hold the consumer lease, which stayed with the parent,
    /// and taking through it would hand messages out twice.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Option<T>> {
        let mut out = MaybeUninit::uninit();
        if !self.copy(0, &mut out)? {
            return Ok(None);
        }
        self.take(self.taken + 1);
        // SAFETY: `copy` returned true: one consistent copy of the message wrote every byte of
        // `out`; every bit pattern is a valid `T` (`T: SharedState`).
        Ok(Some(unsafe { out.assume_init() }))
    }

    /// Takes the next message into `out` if there is one, without waiting: `Ok(true)` if it
    /// took one, `Ok(false)` if none.
    ///
    /// [`try_recv`](Self::try_recv) without the moves of the returned value: the message is
    /// copied from the queue straight into `out`, which a program that handles large messages
    /// in one buffer keeps from one receive to the next. Unless it returns `Ok(true)`, what
    /// `out` holds afterwards is unspecified (a valid `T` still).
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    #[inline]
    pub fn recv_into(&mut self, out: &mut T) -> Result<bool> {
        // SAFETY: `MaybeUninit<T>` has the layout of `T`; the copy only writes bytes into it,
        // and every byte pattern is a valid `T` (`T: SharedState`), so `*out` stays a valid
        // `T` whatever is written.
        let out = unsafe { &mut *(out as *mut T as *mut MaybeUninit<T>) };
        if !self.copy(0, out)? {
            return Ok(false);
        }
        self.take(self.taken + 1);
        Ok(true)
    }

    /// Takes the next message, waiting for it as long as it takes.
    pub fn recv(&mut self) -> Result<T> {
        self.recv_until(Deadline::never())
    }

    /// Takes the next message, waiting at most `timeout` for it ([`Error::Timeout`]).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.recv_until(Deadline::after(timeout))
    }

    fn recv_until(&mut self, deadline: Deadline) -> Result<T> {
        super::receive_until(self, deadline, Self::try_recv, Self::wait_until)
    }

    /// The target of a wait on several queues (see `wait::wait_any`): the next message.
    pub(crate) fn any_target(&self) -> wait::AnyTarget<'_> {
        let h = self.seg.header();
        wait::AnyTarget {
            futex: &h.futex,
            waiters: &h.waiters,
            counter: &h.published,
            at_least: self.taken + 1,
        }
    }

    /// Waits until the next message is sent, or `deadline` (`false`): for consumers of several
    /// queues, which wait on one at a time.
    pub(crate) fn wait_until(&self, deadline: Deadline) -> bool {
        let h = self.seg.header();
        let next = self.taken + 1;
        wait_until(
            &h.futex,
            &h.waiters,
            true,
            deadline,
            Pace::Stream,
            |registered| wait::load_for_wait(&h.published, registered) >= next,
        )
    }

    /// Takes the next message asynchronously; `Err(Error::WriterDied)` when the producer's
    /// process ends while it waits (the next call waits on, for a producer that takes over;
    /// a queue without a producer is simply waited on).
    ///
    /// Cancellation-safe: a message is taken only when the future returns it; dropping the
    /// future loses nothing and cancels its wait. The wait runs on the process's shared wait
    /// engine (see [`RawReader::changed`](crate::RawReader::changed)).
    pub async fn recv_async(&mut self) -> Result<T> {
        let mut wait = AsyncWait::default();
        std::future::poll_fn(|cx| self.poll_recv_with(cx, &mut wait)).await
    }

    /// One poll of a receive that waits with `wait`.
    fn poll_recv_with(&mut self, cx: &mut Context<'_>, wait: &mut AsyncWait) -> Poll<Result<T>> {
        // Bounded: each turn either returns or saw an armed wait end.
        for _ in 0..1_000_000 {
            if let Some(v) = self.try_recv().transpose() {
                return Poll::Ready(v);
            }
            let next = self.taken + 1;
            let published = &self.seg.header().published;
            match wait.poll_wait(cx, &self.seg, true, |registered| {
                wait::load_for_wait(published, registered) >= next
            }) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Takes as many messages as are available, up to `buf.len()`, into `buf` without waiting,
    /// and returns how many (0 if none). The position is stored once for the whole batch.
    pub fn recv_batch(&mut self, buf: &mut [T]) -> Result<usize> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            // SAFETY: `MaybeUninit<T>` has the layout of `T`; the copy only writes bytes into
            // it, and every byte pattern is a valid `T` (`T: SharedState`), so `*slot` stays a
            // valid `T` whatever is written.
            let out = unsafe { &mut *(slot as *mut T as *mut MaybeUninit<T>) };
            if !self.copy(n, out)? {
                break;
            }
            n += 1;
        }
        if n > 0 {
            self.take(self.taken + n);
        }
        Ok(n as usize)
    }

    /// The number of messages taken from this queue since it was created, by this consumer and
    /// the consumers before it; also the number of the last message taken.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// The number of messages sent and not taken yet.
    pub fn backlog(&self) -> u64 {
        protocol::load_acquire(self.seg.published()).saturating_sub(self.taken)
    }

    /// What the queue is (its capacity in messages is `info().slots()`) and who produces it
    /// (`info().writer()`: the producer); see [`SegmentInfo`].
    pub fn info(&self) -> SegmentInfo {
        self.seg.info()
    }

    /// The segment, for the crate's test hooks.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl<T: SharedState> core::fmt::Debug for QueueProducer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueueProducer")
            .field("name", &self.tx.seg.name())
            .field("capacity", &self.tx.seg.geometry().slot_count)
            .field("sent", &self.tx.sent)
            .finish()
    }
}

// Nothing in a consumer is pinned: its `Stream` implementation moves no field it relies on.
impl<T: SharedState> Unpin for QueueConsumer<T> {}

/// The messages, taken in order, as [`recv_async`](QueueConsumer::recv_async) takes them;
/// never ends. Between polls the consumer keeps its armed wait (counted in the queue's waiter
/// count) until a message comes or the consumer is dropped.
impl<T: SharedState> futures_core::Stream for QueueConsumer<T> {
    type Item = Result<T>;

    fn poll_next(self: core::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        let mut wait = core::mem::take(&mut this.stream_wait);
        let polled = this.poll_recv_with(cx, &mut wait).map(Some);
        this.stream_wait = wait;
        polled
    }
}

impl<T: SharedState> core::fmt::Debug for QueueConsumer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueueConsumer")
            .field("name", &self.seg.name())
            .field("capacity", &self.seg.geometry().slot_count)
            .field("taken", &self.taken)
            .finish()
    }
}
