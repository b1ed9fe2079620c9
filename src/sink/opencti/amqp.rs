//! Publishing split bundles to OpenCTI's worker exchange, as pycti does, but with many
//! messages in flight.
//!
//! pycti opens a connection per bundle and waits for each publisher confirm before sending
//! the next message. Here one connection is kept between pushes (re-opened when it breaks)
//! and up to [`RetryPolicy::window`] messages await their confirm at once. Wire content is
//! the same: exchange and routing key from `registerConnector`, `mandatory` off, properties
//! `delivery_mode=2` and `content_encoding="utf-8"` only, heartbeat 10 s, TLS when `use_ssl`.
//!
//! The bodies come from a [`MessageSource`] a batch at a time ([`AmqpPublisher::publish`]):
//! a body is held from its batch until its confirm, so an event of hundreds of thousands of
//! messages is published holding a window and a batch of them, not all.
//!
//! Guarantee: [`AmqpPublisher::publish`] returns `Ok` only when the broker has acked
//! every message. A nack, a broken connection or a confirm that never comes puts the
//! unconfirmed messages back in the queue of work; they are sent again after a backoff on a
//! fresh connection. After [`RetryPolicy::max_failed_rounds`] rounds without progress the
//! call fails and the caller keeps the event for a later run. A message whose confirm was
//! lost with the connection may reach the queue twice; OpenCTI's import is an upsert, so a
//! duplicate costs work, not data.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::{BasicProperties, Channel, Connection};
use tracing::{info, warn};

use crate::opencti::broker::{BrokerEndpoint, BrokerError, PublishTarget};

/// How hard a push tries before giving the event back to the caller.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Messages published and not yet confirmed, at most.
    pub window: usize,
    /// Consecutive rounds that confirm nothing before the push fails.
    pub max_failed_rounds: u32,
    /// First pause after a failed round; doubled each further failure.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long one confirm may take before the connection is considered dead.
    pub confirm_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // 1+2+4+8+16+30+30+30 s: a broker restart or a short network cut is ridden out;
        // a longer outage fails the push so the ledger retries the event next run.
        RetryPolicy {
            window: 1024,
            max_failed_rounds: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            confirm_timeout: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, failed_rounds: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_rounds.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

struct Link {
    connection: Connection,
    channel: Channel,
    /// Which opening this is: a push that saw its link break drops it only if no other push
    /// has re-opened it since.
    generation: u64,
}

/// Publishes to one exchange / routing key with confirms, reconnecting as needed.
pub struct AmqpPublisher {
    endpoint: BrokerEndpoint,
    target: PublishTarget,
    policy: RetryPolicy,
    /// One push at a time writes to the channel, so the messages of an event stay in their
    /// order; the lock is released once they are queued, and confirms are awaited outside it,
    /// so the next event's messages follow without waiting for the broker.
    link: tokio::sync::Mutex<Option<Link>>,
    /// Openings so far (generation of the next link).
    openings: AtomicU64,
    /// Links dropped because they broke (for logs and tests).
    broken_links: AtomicU64,
}

/// What one pass over the pending messages achieved.
struct Round {
    confirmed: usize,
    /// Messages to send again (nacked, unknown fate after a channel error, or not yet
    /// published when the link failed), in order.
    retry: Vec<Message>,
    /// Set when the link must be dropped and re-opened.
    link_error: Option<String>,
    /// Set when the source could not make its messages: the push fails.
    source_error: Option<String>,
    nacked: usize,
    /// The link the round used, if it got one.
    generation: Option<u64>,
}

impl AmqpPublisher {
    pub fn new(endpoint: BrokerEndpoint, target: PublishTarget, policy: RetryPolicy) -> Self {
        AmqpPublisher {
            endpoint,
            target,
            policy,
            link: tokio::sync::Mutex::new(None),
            openings: AtomicU64::new(0),
            broken_links: AtomicU64::new(0),
        }
    }

    /// How many times a broken connection or channel was dropped and had to be re-opened.
    pub fn broken_links(&self) -> u64 {
        self.broken_links.load(Ordering::Relaxed)
    }

    /// Publishes every body in order; `Ok(n)` once all `n` are confirmed by the broker.
    pub async fn publish_all(&self, bodies: &[String]) -> Result<usize, BrokerError> {
        let mut source = SliceSource { bodies, next: 0 };
        self.publish(&mut source).await
    }

    /// Publishes every message of `source` in order, taking its bodies a batch at a time;
    /// `Ok(n)` once all `n` are confirmed by the broker. A body is kept only until its
    /// confirm (or, unconfirmed, until it is sent again), so the memory a push holds is a
    /// window of messages and a batch, whatever its length.
    pub async fn publish(&self, source: &mut dyn MessageSource) -> Result<usize, BrokerError> {
        let total = source.total();
        let mut queue = Queue::new(total);
        let mut confirmed = 0usize;
        let mut failed_rounds = 0u32;
        while !queue.is_done() {
            let round = self.publish_round(source, &mut queue).await;
            confirmed += round.confirmed;
            if let Some(error) = round.source_error {
                return Err(BrokerError::Unconfirmed {
                    confirmed,
                    total,
                    rounds: failed_rounds,
                    last_error: format!("making the messages: {error}"),
                });
            }
            queue.retry = round.retry.into();
            if queue.is_done() {
                break;
            }
            let reason = match &round.link_error {
                Some(error) => {
                    if let Some(generation) = round.generation {
                        let mut link = self.link.lock().await;
                        if link.as_ref().is_some_and(|l| l.generation == generation) {
                            self.broken_links.fetch_add(1, Ordering::Relaxed);
                            self.drop_link(&mut link).await;
                        }
                    }
                    error.clone()
                }
                None => format!("{} messages nacked by the broker", round.nacked),
            };
            if round.confirmed > 0 {
                failed_rounds = 0;
            }
            failed_rounds += 1;
            if failed_rounds > self.policy.max_failed_rounds {
                return Err(BrokerError::Unconfirmed {
                    confirmed,
                    total,
                    rounds: failed_rounds - 1,
                    last_error: reason,
                });
            }
            let pause = self.policy.backoff(failed_rounds);
            warn!(
                broker = %self.endpoint.display_address(),
                unconfirmed = total.saturating_sub(confirmed),
                total,
                retry_in_ms = pause.as_millis() as u64,
                reason = %reason,
                "RabbitMQ did not confirm every message; publishing them again"
            );
            tokio::time::sleep(pause).await;
        }
        Ok(confirmed)
    }

    /// Closes the connection, if one is open (end of the process).
    pub async fn close(&self) {
        let mut link = self.link.lock().await;
        self.drop_link(&mut link).await;
    }

    /// The open channel and its link's generation, opening a link when there is none or the
    /// current one broke.
    async fn channel(&self, link: &mut Option<Link>) -> Result<(Channel, u64), BrokerError> {
        if let Some(existing) = link.as_ref() {
            if existing.connection.status().connected() && existing.channel.status().connected() {
                return Ok((existing.channel.clone(), existing.generation));
            }
            self.broken_links.fetch_add(1, Ordering::Relaxed);
            self.drop_link(link).await;
        }
        let connection = self.endpoint.connect().await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| BrokerError::Connect {
                address: self.endpoint.display_address(),
                reason: format!("opening a channel: {e}"),
            })?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| BrokerError::Connect {
                address: self.endpoint.display_address(),
                reason: format!("enabling publisher confirms: {e}"),
            })?;
        info!(broker = %self.endpoint.display_address(), "connected to RabbitMQ");
        let generation = self.openings.fetch_add(1, Ordering::Relaxed);
        *link = Some(Link {
            connection,
            channel: channel.clone(),
            generation,
        });
        Ok((channel, generation))
    }

    async fn drop_link(&self, link: &mut Option<Link>) {
        if let Some(old) = link.take()
            && old.connection.status().connected()
        {
            let _ = old.connection.close(200, "bye").await;
        }
    }

    /// One pass over what is left to send (the messages to send again, then the source's
    /// next ones): queue every message on the channel while holding the link (waiting for
    /// confirms only when the window is full), until the source is exhausted or the link
    /// fails, then await the remaining confirms with the link released.
    async fn publish_round(&self, source: &mut dyn MessageSource, queue: &mut Queue) -> Round {
        let mut round = Round {
            confirmed: 0,
            retry: Vec::new(),
            link_error: None,
            source_error: None,
            nacked: 0,
            generation: None,
        };
        let mut link = self.link.lock().await;
        let channel = match self.channel(&mut link).await {
            Ok((channel, generation)) => {
                round.generation = Some(generation);
                channel
            }
            Err(error) => {
                round.link_error = Some(error.to_string());
                round.retry = queue.retry.drain(..).collect();
                return round;
            }
        };
        let mut in_flight: VecDeque<(Message, InFlight<'_>)> = VecDeque::new();
        while round.link_error.is_none() {
            if in_flight.len() >= self.policy.window.max(1) {
                if let Some((message, settling)) = in_flight.pop_front() {
                    self.settle(message, settling, &mut round).await;
                }
                continue;
            }
            let message = match queue.next(source).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(error) => {
                    round.source_error = Some(error);
                    break;
                }
            };
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_encoding("utf-8".into());
            let body = message.body.clone();
            let channel = &channel;
            // The future owns a handle on the body: the message stays sendable again (the
            // queue's copy) while lapin writes this one.
            let mut settling: Pin<Box<dyn Future<Output = Settled> + Send + '_>> =
                Box::pin(async move {
                    let publish = channel.basic_publish(
                        &self.target.exchange,
                        &self.target.routing_key,
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        properties,
                    );
                    match publish.await {
                        Ok(confirm) => confirm.await.map_err(Failure::Confirm),
                        Err(error) => Err(Failure::Publish(error)),
                    }
                });
            // The first poll queues the message's frames for the connection's I/O thread, in
            // publishing order; lapin's future then waits for the socket write, which needs
            // no waiting here: the next message is queued at once, and the write and the
            // broker's confirm are awaited together in `settle`.
            match futures::poll!(settling.as_mut()) {
                Poll::Ready(Err(Failure::Publish(error))) => {
                    round.link_error = Some(format!("publish: {error}"));
                    round.retry.push(message);
                }
                Poll::Ready(settled) => in_flight.push_back((message, InFlight::Done(settled))),
                Poll::Pending => in_flight.push_back((message, InFlight::Running(settling))),
            }
        }
        drop(link);
        while let Some((message, settling)) = in_flight.pop_front() {
            self.settle(message, settling, &mut round).await;
        }
        // Everything not yet published is sent after the retries, in order.
        round.retry.extend(queue.retry.drain(..));
        round.retry.sort_unstable_by_key(|message| message.index);
        round
    }

    async fn settle(&self, message: Message, settling: InFlight<'_>, round: &mut Round) {
        // Once the link is known to be broken, only confirms that already arrived count;
        // waiting the full timeout for each of the others would only delay the retry.
        let limit = if round.link_error.is_some() {
            Duration::ZERO
        } else {
            self.policy.confirm_timeout
        };
        let settled = match settling {
            InFlight::Done(settled) => Ok(settled),
            InFlight::Running(future) => tokio::time::timeout(limit, future).await,
        };
        match settled {
            Ok(Ok(Confirmation::Ack(_))) => round.confirmed += 1,
            Ok(Ok(Confirmation::Nack(_))) => {
                round.nacked += 1;
                round.retry.push(message);
            }
            Ok(Ok(Confirmation::NotRequested)) => {
                round.retry.push(message);
                round.link_error.get_or_insert_with(|| {
                    "publisher confirms are not enabled on the channel".into()
                });
            }
            Ok(Err(Failure::Publish(error))) => {
                round.retry.push(message);
                round
                    .link_error
                    .get_or_insert_with(|| format!("publish: {error}"));
            }
            Ok(Err(Failure::Confirm(error))) => {
                round.retry.push(message);
                round
                    .link_error
                    .get_or_insert_with(|| format!("waiting for a confirm: {error}"));
            }
            Err(_) => {
                round.retry.push(message);
                round.link_error.get_or_insert_with(|| {
                    format!(
                        "no confirm within {} s",
                        self.policy.confirm_timeout.as_secs()
                    )
                });
            }
        }
    }
}

/// Why a message has no confirm: the frames could not be written, or the confirm failed.
enum Failure {
    Publish(lapin::Error),
    Confirm(lapin::Error),
}

type Settled = Result<Confirmation, Failure>;

/// The bodies of the messages of one push, made in order a batch at a time.
#[async_trait]
pub trait MessageSource: Send {
    /// How many messages the source gives in all.
    fn total(&self) -> usize;
    /// The next bodies, in order; empty once every message was given.
    async fn next_batch(&mut self) -> Result<Vec<String>, String>;
}

/// Bodies already made, given a window's worth at a time (as a source that writes them).
struct SliceSource<'a> {
    bodies: &'a [String],
    next: usize,
}

#[async_trait]
impl MessageSource for SliceSource<'_> {
    fn total(&self) -> usize {
        self.bodies.len()
    }

    async fn next_batch(&mut self) -> Result<Vec<String>, String> {
        let end = self.bodies.len().min(self.next + 1024);
        let batch = self.bodies.get(self.next..end).unwrap_or_default().to_vec();
        self.next = end;
        Ok(batch)
    }
}

/// One message: its place in the push and its body.
struct Message {
    index: usize,
    body: Arc<String>,
}

/// What is left to send: messages to send again, then the source's batch being sent, then
/// the rest of the source.
struct Queue {
    retry: VecDeque<Message>,
    batch: VecDeque<Message>,
    /// Index of the source's next message.
    next_index: usize,
    /// The source's total: once given, it is not asked again.
    total: usize,
    source_done: bool,
}

impl Queue {
    fn new(total: usize) -> Queue {
        Queue {
            retry: VecDeque::new(),
            batch: VecDeque::new(),
            next_index: 0,
            total,
            source_done: total == 0,
        }
    }

    async fn next(&mut self, source: &mut dyn MessageSource) -> Result<Option<Message>, String> {
        if let Some(message) = self.retry.pop_front() {
            return Ok(Some(message));
        }
        if self.batch.is_empty() && !self.source_done {
            let bodies = source.next_batch().await?;
            self.source_done = bodies.is_empty() || self.next_index + bodies.len() >= self.total;
            for body in bodies {
                self.batch.push_back(Message {
                    index: self.next_index,
                    body: Arc::new(body),
                });
                self.next_index += 1;
            }
        }
        Ok(self.batch.pop_front())
    }

    /// Whether every message was taken (sent, and not given back for a retry).
    fn is_done(&self) -> bool {
        self.retry.is_empty() && self.batch.is_empty() && self.source_done
    }
}

/// A published message awaiting its socket write and broker confirm, or already settled.
enum InFlight<'a> {
    Running(Pin<Box<dyn Future<Output = Settled> + Send + 'a>>),
    Done(Settled),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_secs(1));
        assert_eq!(policy.backoff(2), Duration::from_secs(2));
        assert_eq!(policy.backoff(5), Duration::from_secs(16));
        assert_eq!(policy.backoff(6), Duration::from_secs(30));
        assert_eq!(policy.backoff(40), Duration::from_secs(30));
    }
}
