//! Registry notifications: `ImageReceiver`s served on the operator's HTTPS listener, so a
//! push reaches the stream within a second instead of at the next scheduled check.
//!
//! Every replica serves them (as it serves the webhooks); the imports happen on the leader:
//!
//! 1. [`http`]: the request is matched by its path to a receiver, capped by its rate
//!    ([`limit`]), size-limited, authenticated ([`auth`]: the token or the HMAC signature,
//!    in constant time; refusals cost nothing more), and parsed ([`payload`], per vendor).
//! 2. On the leader, [`queue::Queue`] picks the woken tags ([`select`]: scheduled tags that
//!    pull that repository and tag, in namespaces the receiver may wake), coalesces bursts
//!    ([`wake`]) and triggers the imagestream controller ([`queue::SETTLE`] later: registries
//!    notify while they still record the push), which checks them as a scheduled check does
//!    (one HEAD, an import when it moved; same history, conditions, Events, budgets). The
//!    request is answered once they are checked (or 202 after [`REPLY_WAIT`]).
//! 3. A replica that does not lead forwards the request as it came to the leader
//!    ([`forward`], the address the leader keeps in its Lease), which authenticates it again;
//!    while there is no leader it answers 503 and the sender retries. A notification is
//!    answered 200 only once its tags were checked, so a leader that dies loses none the
//!    sender does not send again; what no sender retries the scheduled checks still find.
//!
//! [`watch`] keeps the receivers (and their Secrets' tokens) in a table by path, on every
//! replica, and the leader writes their status (the URL).

pub mod auth;
pub mod forward;
pub mod http;
pub mod limit;
pub mod payload;
pub mod queue;
pub mod resource;
pub mod select;
pub mod wake;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::controller::Metrics;

pub use queue::Queue;
pub use resource::{ImageReceiver, ImageReceiverSpec, ImageReceiverStatus, ReceiverType};

/// How long a request waits for the checks it asked for before it is answered 202.
pub const REPLY_WAIT: Duration = Duration::from_secs(10);
/// Largest notification body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Requests per minute a receiver accepts on one replica by default.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 1200;
/// Header marking a request one replica forwarded to the leader (never forwarded again).
pub const FORWARDED_HEADER: &str = "x-imagestream-operator-forwarded";

/// Where receivers are served and who may wake what.
#[derive(Clone, Debug)]
pub struct Options {
    /// The operator's namespace: only receivers there may wake other namespaces.
    pub operator_namespace: String,
    /// Only receivers of this namespace; `None` watches every namespace.
    pub watch_namespace: Option<String>,
    /// `https://host[:port]` the receivers' URLs start with (the Service, or the address the
    /// webhooks are registered at).
    pub base_url: String,
    /// How a follower reaches the leader; `None` without leader election.
    pub forward: Option<forward::ForwardOptions>,
}

/// One receiver as served (`Debug` leaves the token out).
pub struct Entry {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub kind: ReceiverType,
    token: String,
    pub allowed: select::Allowed,
    pub registry: Option<String>,
    limit: Arc<Mutex<limit::RateLimit>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("allowed", &self.allowed)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// `namespace/name`, the metrics label.
    pub fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The receivers of this replica: the table by path, and the leader's queue while this
/// replica leads.
pub struct Receivers {
    options: Options,
    metrics: Arc<Metrics>,
    table: RwLock<HashMap<String, Arc<Entry>>>,
    queue: RwLock<Option<Arc<Queue>>>,
    forwarder: Option<forward::Forwarder>,
    /// Signalled when this replica starts leading (statuses are written then).
    leading: tokio::sync::Notify,
}

impl std::fmt::Debug for Receivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receivers")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Receivers {
    pub fn new(client: kube::Client, options: Options, metrics: Arc<Metrics>) -> Receivers {
        let forwarder = options
            .forward
            .clone()
            .map(|f| forward::Forwarder::new(client, f));
        Receivers {
            options,
            metrics,
            table: RwLock::default(),
            queue: RwLock::default(),
            forwarder,
            leading: tokio::sync::Notify::new(),
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The receiver served at `path`.
    pub fn entry(&self, path: &str) -> Option<Arc<Entry>> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    fn replace_table(&self, table: HashMap<String, Arc<Entry>>) {
        *self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = table;
    }

    /// The leader's queue, while this replica leads.
    pub fn queue(&self) -> Option<Arc<Queue>> {
        self.queue
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// This replica leads: notifications go to `queue` until the guard is dropped.
    pub fn lead(self: &Arc<Self>, queue: Arc<Queue>) -> Leading {
        *self
            .queue
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(queue);
        self.leading.notify_one();
        Leading(self.clone())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// While held, this replica's receivers hand notifications to its controllers.
pub struct Leading(Arc<Receivers>);

impl Drop for Leading {
    fn drop(&mut self) {
        *self
            .0
            .queue
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}
