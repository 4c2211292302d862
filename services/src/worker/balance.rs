//! The balancer of a worker process: every few seconds it counts the live
//! processes of its role (`$SRV.PING.<role>`), reads which of its
//! partitions' durables are pinned to it, and when it owns more than its
//! share hands one over (`fleetbus_actors::ownership`). A process that
//! joins a running stage so gets its share within a few rounds; one that
//! leaves lets go of its partitions when it stops, and the others take
//! them.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use fleetbus_actors::ownership::{fair_share, surplus};
use fleetbus_actors::{Gate, Ownership};
use fleetbus_wire::names::{Durable, OWNER_GROUP};
use futures::StreamExt;

use crate::nats::Role;

/// How often the balancer looks.
pub const EVERY: Duration = Duration::from_secs(5);
/// How long a worker stays away from a partition it handed over: long
/// enough for another process's waiting pull to be pinned.
pub const AWAY: Duration = Duration::from_secs(10);

/// What the balancer works with.
pub struct Balancer {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub role: Role,
    pub stage: Durable,
    pub ownership: Arc<Ownership>,
    pub gate: Arc<Gate>,
}

impl Balancer {
    /// Runs until the process stops.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(EVERY);
        tick.tick().await;
        while !self.gate.is_stopping() {
            tick.tick().await;
            if self.gate.is_stopping() {
                break;
            }
            // Not while downstream refuses writes: a hand-over naks what
            // the worker parked, and each nak is a delivery more.
            if !self.gate.is_open() {
                continue;
            }
            let processes = self.processes().await;
            let owned = self.owned().await;
            let share = fair_share(self.ownership.len(), processes);
            let over = surplus(&owned, share);
            self.ownership
                .confirm(owned.iter().copied().filter(|p| Some(*p) != over).collect());
            if let Some(p) = over {
                tracing::info!(
                    partition = p,
                    owned = owned.len(),
                    share,
                    processes,
                    "Owning more than this process's share; handing a partition over."
                );
                self.ownership.hand_over(p, AWAY);
            }
        }
    }

    /// The live processes of the role, this one included (at least 1).
    async fn processes(&self) -> usize {
        let inbox = self.client.new_inbox();
        let Ok(mut replies) = self.client.subscribe(inbox.clone()).await else {
            return 1;
        };
        let ping = format!("$SRV.PING.{}", self.role.name());
        if self
            .client
            .publish_with_reply(ping, inbox, "".into())
            .await
            .is_err()
        {
            return 1;
        }
        let mut n = 0;
        let window = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(window);
        loop {
            tokio::select! {
                reply = replies.next() => match reply {
                    Some(_) => n += 1,
                    None => break,
                },
                _ = &mut window => break,
            }
        }
        n.max(1)
    }

    /// The partitions whose durable is pinned to this process's worker.
    async fn owned(&self) -> Vec<usize> {
        let stream = self.stage.stream().name();
        let Ok(handle) = self.js.get_stream_no_info(stream).await else {
            return Vec::new();
        };
        let mut owned = Vec::new();
        for p in 0..self.ownership.len() {
            let Some(pin) = self.ownership.pin(p) else {
                continue;
            };
            let Ok(info) = handle.consumer_info(self.stage.partition(p as u32)).await else {
                // Not known now: counted as owned, not lost.
                owned.push(p);
                continue;
            };
            let pinned = info
                .priority_groups
                .iter()
                .find(|g| g.group == OWNER_GROUP)
                .and_then(|g| g.pinned_client_id.as_deref());
            if pinned == Some(pin.as_str()) {
                owned.push(p);
            } else {
                self.ownership.lost(p);
            }
        }
        owned
    }
}
