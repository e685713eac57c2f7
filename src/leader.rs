//! Leader election over a `coordination.k8s.io/v1` Lease: only the leader runs the
//! controllers (and the pruner); every replica serves the webhooks.
//!
//! The holder renews the Lease every `renew_every`; another replica takes it over once
//! `renewTime + leaseDurationSeconds` has passed. A leader that cannot renew for a whole lease
//! duration stops its work and [`run_as_leader`] returns [`Error::Lost`]: the process ends and
//! Kubernetes restarts it as a follower, so two replicas never act as leaders for longer than
//! one lease duration. On a clean shutdown the Lease is released, so the next replica takes
//! over at once. Every write carries the Lease's resourceVersion.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

/// How to take part in the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderOptions {
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica (the Pod name in a cluster).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
    /// How often a follower tries to take the Lease.
    pub retry_every: Duration,
    /// Where the other replicas reach this one (`host:port` of its HTTPS listener), kept in
    /// the Lease while this replica leads, for notifications a follower receives.
    pub address: Option<String>,
}

/// The Lease annotation holding the leader's [`LeaderOptions::address`].
pub const ADDRESS_ANNOTATION: &str = "operator.imagestream.io/leader-address";

impl LeaderOptions {
    /// 10 s leases renewed every 3 s, tried every 2 s: a dead leader is replaced within
    /// about 12 s.
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaderOptions {
        LeaderOptions {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(10),
            renew_every: Duration::from_secs(3),
            retry_every: Duration::from_secs(2),
            address: None,
        }
    }
}

/// Why leading ended; [`Error::reason`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Lease {0} could not be renewed for a whole lease duration; stopping")]
    Lost(String),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Lost(_) => "LeadershipLost",
        }
    }
}

/// What to do with the Lease as it is (pure).
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Take it (absent, expired, released or ours): write `spec`.
    Take(LeaseSpec),
    /// Someone else holds it until about then.
    Wait,
}

/// Decides on `current` (the Lease's spec, if the Lease exists) for `identity` at `now`.
pub fn decide(
    current: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    lease: Duration,
) -> Decision {
    let seconds = i32::try_from(lease.as_secs()).unwrap_or(i32::MAX);
    let mine = |spec: &LeaseSpec| spec.holder_identity.as_deref() == Some(identity);
    let expired = |spec: &LeaseSpec| {
        let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
            return true;
        };
        let held = spec.lease_duration_seconds.unwrap_or(seconds);
        renewed + SignedDuration::from_secs(i64::from(held)) < now
    };
    match current {
        Some(spec) if !mine(spec) && spec.holder_identity.is_some() && !expired(spec) => {
            Decision::Wait
        }
        Some(spec) => {
            let transitions = spec.lease_transitions.unwrap_or(0);
            Decision::Take(LeaseSpec {
                holder_identity: Some(identity.into()),
                lease_duration_seconds: Some(seconds),
                acquire_time: if mine(spec) {
                    spec.acquire_time.clone()
                } else {
                    Some(MicroTime(now))
                },
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(if mine(spec) {
                    transitions
                } else {
                    transitions + 1
                }),
                ..LeaseSpec::default()
            })
        }
        None => Decision::Take(LeaseSpec {
            holder_identity: Some(identity.into()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

/// One attempt at taking or renewing the Lease; whether this replica holds it afterwards.
async fn try_take(api: &Api<Lease>, options: &LeaderOptions) -> Result<bool, kube::Error> {
    let current = api.get_opt(&options.name).await?;
    let decision = decide(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        &options.identity,
        Timestamp::now(),
        options.lease_duration,
    );
    let Decision::Take(spec) = decision else {
        return Ok(false);
    };
    let params = PostParams::default();
    let with_address = |lease: &mut Lease| {
        let annotations = lease.metadata.annotations.get_or_insert_default();
        match &options.address {
            Some(address) => {
                annotations.insert(ADDRESS_ANNOTATION.into(), address.clone());
            }
            None => {
                annotations.remove(ADDRESS_ANNOTATION);
            }
        }
    };
    let written = match current {
        Some(mut lease) => {
            lease.spec = Some(spec);
            with_address(&mut lease);
            api.replace(&options.name, &params, &lease).await
        }
        None => {
            let mut lease = Lease {
                metadata: ObjectMeta {
                    name: Some(options.name.clone()),
                    namespace: Some(options.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            with_address(&mut lease);
            api.create(&params, &lease).await
        }
    };
    match written {
        Ok(_) => Ok(true),
        // someone else wrote it first
        Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (best effort), so a follower takes over without waiting for expiry.
async fn release(api: &Api<Lease>, options: &LeaderOptions) {
    if let Ok(Some(mut lease)) = api.get_opt(&options.name).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(options.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        let _ = api
            .replace(&options.name, &PostParams::default(), &lease)
            .await;
    }
}

/// Waits to lead, then runs `work` with a stop signal that fires on `shutdown` or when
/// leadership is lost. Returns `Ok(None)` when `shutdown` came before leadership.
pub async fn run_as_leader<W, F, T>(
    client: Client,
    options: LeaderOptions,
    shutdown: Shared<BoxFuture<'static, ()>>,
    work: W,
) -> Result<Option<T>, Error>
where
    W: FnOnce(Shared<BoxFuture<'static, ()>>) -> F,
    F: Future<Output = T>,
{
    let api = Api::<Lease>::namespaced(client, &options.namespace);
    loop {
        match try_take(&api, &options).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "reading or writing the leader Lease"),
        }
        tokio::select! {
            () = shutdown.clone() => return Ok(None),
            () = tokio::time::sleep(options.retry_every) => {}
        }
    }
    tracing::info!(identity = %options.identity, lease = %options.name, "leading");
    // renewal runs in this future, not a task of its own: whatever ends this future (a
    // dying process, an aborted task) ends the renewals too
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let renew = {
        let (api, options) = (api.clone(), options.clone());
        async move {
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(options.renew_every).await;
                match try_take(&api, &options).await {
                    Ok(true) => last = tokio::time::Instant::now(),
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, "renewing the leader Lease"),
                }
                if last.elapsed() >= options.lease_duration {
                    return;
                }
            }
        }
    };
    let lost = lost_rx.map(|_| ()).shared();
    let stop = {
        let (shutdown, lost) = (shutdown.clone(), lost.clone());
        async move {
            futures::future::select(shutdown, lost).await;
        }
        .boxed()
        .shared()
    };
    let work = work(stop);
    tokio::pin!(work);
    tokio::pin!(renew);
    let (output, was_lost) = tokio::select! {
        output = &mut work => (output, false),
        () = &mut renew => {
            tracing::warn!(lease = %options.name, "leadership lost; stopping the controllers");
            let _ = lost_tx.send(());
            (work.await, true)
        }
    };
    if was_lost {
        return Err(Error::Lost(options.name));
    }
    release(&api, &options).await;
    Ok(Some(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn held(by: &str, renewed: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            acquire_time: Some(MicroTime(at("2026-01-01T00:00:00Z"))),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    const LEASE: Duration = Duration::from_secs(15);

    #[test]
    fn a_live_lease_of_another_is_respected_an_expired_one_taken() {
        let now = at("2026-11-22T12:00:10Z");
        let live = held("b", "2026-11-22T12:00:00Z", 3);
        assert_eq!(decide(Some(&live), "a", now, LEASE), Decision::Wait);
        let expired = held("b", "2026-11-22T11:59:50Z", 3);
        let Decision::Take(spec) = decide(Some(&expired), "a", now, LEASE) else {
            panic!("expired lease not taken")
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
    }

    #[test]
    fn the_holder_renews_and_a_released_or_absent_lease_is_free() {
        let now = at("2026-11-22T12:00:10Z");
        let mine = held("a", "2026-11-22T12:00:05Z", 2);
        let Decision::Take(spec) = decide(Some(&mine), "a", now, LEASE) else {
            panic!("not renewed")
        };
        assert_eq!(
            spec.lease_transitions,
            Some(2),
            "a renewal is no transition"
        );
        assert_eq!(spec.acquire_time, mine.acquire_time);
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        let released = LeaseSpec {
            holder_identity: None,
            ..held("b", "2026-11-22T12:00:09Z", 1)
        };
        assert!(matches!(
            decide(Some(&released), "a", now, LEASE),
            Decision::Take(_)
        ));
        assert!(matches!(decide(None, "a", now, LEASE), Decision::Take(_)));
    }
}
