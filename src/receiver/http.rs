//! One notification request, from path to answer: the receiver, its rate, the body, the
//! token or signature, the payload, then the leader's queue (or the leader, forwarded).
//!
//! Answers: 404 unknown path, 405 not POST, 429 over the rate (with `Retry-After`), 413 body
//! too large, 401 not authenticated, 400 malformed, 200 checked (or nothing to check), 202
//! still queued after [`REPLY_WAIT`], 503 no leader to take it (with `Retry-After`; senders
//! retry). Only an authenticated, well-formed notification reaches the queue, so refusals
//! cost no registry request.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use super::{FORWARDED_HEADER, MAX_BODY_BYTES, REPLY_WAIT, Receivers, auth, payload};
use crate::admission::server::text;

/// Answers one request to a path under [`auth::PATH_PREFIX`].
pub async fn respond(receivers: &Receivers, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let Some(entry) = receivers.entry(&path) else {
        return text(StatusCode::NOT_FOUND, "no receiver at this path");
    };
    let label = entry.label();
    let kind = entry.kind.as_str();
    let metrics = receivers.metrics();
    if request.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST the registry's notification",
        );
    }
    let limited = entry
        .limit
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take(Instant::now());
    if let Err(wait) = limited {
        metrics.notification(&label, kind, "rate_limited");
        let mut response = text(StatusCode::TOO_MANY_REQUESTS, "too many notifications");
        let seconds = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        return response;
    }
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            metrics.notification(&label, kind, "malformed");
            tracing::info!(receiver = %label, error = %e, "notification body unreadable");
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body could not be read (limit {MAX_BODY_BYTES} bytes)"),
            );
        }
    };
    let header = |name: &str| header_value(&parts.headers, name);
    if let Err(refused) = auth::check(entry.kind, &entry.token, &header, &body) {
        metrics.notification(&label, kind, "unauthorized");
        tracing::info!(receiver = %label, reason = %refused, "notification refused");
        return text(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let pushes = match payload::parse(entry.kind, &header, &body) {
        Ok(pushes) => pushes,
        Err(malformed) => {
            metrics.notification(&label, kind, "malformed");
            tracing::info!(receiver = %label, error = %malformed, "notification malformed");
            return text(
                StatusCode::BAD_REQUEST,
                &format!("malformed notification: {malformed}"),
            );
        }
    };

    let Some(queue) = receivers.queue() else {
        // not the leader: the leader takes it (and counts it)
        if parts.headers.contains_key(FORWARDED_HEADER) {
            return unavailable("forwarded to a replica that does not lead");
        }
        let Some(forwarder) = &receivers.forwarder else {
            metrics.notification(&label, kind, "unavailable");
            return unavailable("the controllers are not running");
        };
        return match forwarder.forward(&path, &parts.headers, body).await {
            Ok((status, body)) => {
                let mut response = Response::new(Full::new(body));
                *response.status_mut() = status;
                response
            }
            Err(e) => {
                metrics.notification(&label, kind, "unavailable");
                tracing::info!(receiver = %label, error = %e, "forwarding to the leader failed");
                unavailable(&format!("no leader takes notifications now: {e}"))
            }
        };
    };
    let tickets = queue.submit(&pushes, &entry.allowed, entry.registry.as_deref(), arrived);
    tracing::debug!(receiver = %label, ?pushes, tickets = tickets.len(), "notification");
    if tickets.is_empty() {
        metrics.notification(&label, kind, "no_match");
        tracing::debug!(receiver = %label, pushes = pushes.len(), "notification wakes no tag");
        return text(StatusCode::OK, "no scheduled tag follows what was pushed");
    }
    metrics.notification(&label, kind, "accepted");
    let tags = tickets.len();
    tracing::debug!(receiver = %label, tags, "notification woke tags");
    if queue.wait(&tickets, REPLY_WAIT).await {
        text(StatusCode::OK, &format!("checked {tags} tag(s)"))
    } else if receivers.queue().is_some() {
        text(
            StatusCode::ACCEPTED,
            &format!("{tags} tag(s) queued for a check"),
        )
    } else {
        // leadership ended before the checks: the sender's retry reaches the next leader
        unavailable("leadership changed before the check")
    }
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn unavailable(message: &str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
