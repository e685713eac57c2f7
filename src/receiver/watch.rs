//! Keeps the receiver table of a replica: every `ImageReceiver` with its Secret's token, by
//! path. Rebuilt when a receiver changes and every [`REFRESH`] (a rotated token takes effect
//! within it), and when this replica starts leading, whose statuses it then writes: the URL,
//! the namespaces it wakes, and `Ready`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};

use super::limit::RateLimit;
use super::resource::{ImageReceiver, ImageReceiverStatus, TOKEN_KEY};
use super::{DEFAULT_REQUESTS_PER_MINUTE, Entry, Receivers, auth, select};

/// How often receivers' Secrets are read again.
pub const REFRESH: Duration = Duration::from_secs(30);

/// Field manager of status writes.
const MANAGER: &str = "imagestream-operator";

/// Serves the receivers of `receivers`' scope until the future is dropped.
pub async fn run(client: Client, receivers: Arc<Receivers>) {
    let api: Api<ImageReceiver> = match &receivers.options().watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store::<ImageReceiver>();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .filter(|e| {
            futures::future::ready(matches!(
                e,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
            ))
        });
    let mut events = std::pin::pin!(events);
    let limits: Limits = Mutex::default();
    let mut listed = false;
    loop {
        let leading = receivers.leading.notified();
        tokio::select! {
            event = events.next() => match event {
                Some(_) => listed = true,
                None => return,
            },
            () = tokio::time::sleep(REFRESH) => {}
            () = leading => {}
        }
        if !listed {
            continue;
        }
        let state = store.state();
        let mut table = HashMap::new();
        let mut statuses = Vec::new();
        for receiver in &state {
            let (entry, status) = serve(&client, &receivers, receiver, &limits).await;
            if let Some(entry) = entry {
                table.insert(
                    status.webhook_path.clone().unwrap_or_default(),
                    Arc::new(entry),
                );
            }
            statuses.push((receiver.clone(), status));
        }
        let live: Vec<String> = table.values().map(|e| e.uid.clone()).collect();
        limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|uid, _| live.contains(uid));
        receivers.replace_table(table);
        if receivers.queue().is_some() {
            for (receiver, status) in statuses {
                write_status(&client, &receiver, status).await;
            }
        }
    }
}

/// Each receiver's rate limit by UID: it survives rebuilds while the receiver and its rate
/// stay.
type Limits = Mutex<HashMap<String, Arc<Mutex<RateLimit>>>>;

/// The entry serving `receiver` (none without a usable token), and its status.
async fn serve(
    client: &Client,
    receivers: &Receivers,
    receiver: &ImageReceiver,
    limits: &Limits,
) -> (Option<Entry>, ImageReceiverStatus) {
    let namespace = receiver.namespace().unwrap_or_default();
    let name = receiver.name_any();
    let uid = receiver.uid().unwrap_or_default();
    let options = receivers.options();
    let (allowed, refused) = select::allowed(
        &namespace,
        &options.operator_namespace,
        receiver.spec.namespaces.as_deref(),
    );
    let mut status = ImageReceiverStatus {
        namespaces: allowed.to_list(),
        observed_generation: receiver.metadata.generation,
        ..ImageReceiverStatus::default()
    };
    let secret_name = &receiver.spec.secret_ref.name;
    let token = match Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_opt(secret_name)
        .await
    {
        Ok(Some(secret)) => secret
            .data
            .as_ref()
            .and_then(|d| d.get(TOKEN_KEY))
            .map(|t| String::from_utf8_lossy(&t.0).trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                (
                    "TokenMissing",
                    format!("Secret {secret_name} has no non-empty key {TOKEN_KEY:?}"),
                )
            }),
        Ok(None) => Err(("SecretNotFound", format!("Secret {secret_name} not found"))),
        Err(e) => Err((
            "SecretUnreadable",
            format!("reading Secret {secret_name}: {e}"),
        )),
    };
    let token = match token {
        Ok(token) => token,
        Err((reason, message)) => {
            status.conditions = vec![ready(receiver, "False", reason, &message)];
            return (None, status);
        }
    };
    let path = auth::webhook_path(&namespace, &name, &token);
    status.url = Some(format!("{}{path}", options.base_url.trim_end_matches('/')));
    status.webhook_path = Some(path);
    let mut message = String::from("notifications are served at status.url");
    if !refused.is_empty() {
        message += &format!(
            "; only receivers in namespace {} may wake other namespaces, so these are not woken: {}",
            options.operator_namespace,
            refused.join(", ")
        );
    }
    status.conditions = vec![ready(receiver, "True", "Serving", &message)];
    let per_minute = receiver
        .spec
        .max_requests_per_minute
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_REQUESTS_PER_MINUTE);
    let limit = {
        let mut limits = limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let limit = limits
            .entry(uid.clone())
            .or_insert_with(|| Arc::new(Mutex::new(RateLimit::new(per_minute, Instant::now()))))
            .clone();
        let mut current = limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.per_minute() != per_minute {
            *current = RateLimit::new(per_minute, Instant::now());
        }
        drop(current);
        limit
    };
    let entry = Entry {
        namespace,
        name,
        uid,
        kind: receiver.spec.type_,
        token,
        allowed,
        registry: receiver
            .spec
            .registry
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        limit,
    };
    (Some(entry), status)
}

/// The `Ready` condition, keeping the stored transition time while the status stays.
fn ready(receiver: &ImageReceiver, status: &str, reason: &str, message: &str) -> Condition {
    let previous = receiver
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status == status);
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: receiver.metadata.generation,
        last_transition_time: previous
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| Time(jiff::Timestamp::now())),
    }
}

/// Writes `status` when it differs from the stored one.
async fn write_status(client: &Client, receiver: &ImageReceiver, status: ImageReceiverStatus) {
    if receiver.status.as_ref() == Some(&status) {
        return;
    }
    let api: Api<ImageReceiver> =
        Api::namespaced(client.clone(), &receiver.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": status });
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    if let Err(e) = api
        .patch_status(&receiver.name_any(), &params, &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(receiver = %receiver.name_any(), error = %e, "writing a receiver's status");
    }
}
