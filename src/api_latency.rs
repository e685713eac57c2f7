//! The apiserver's latency as the operator sees it: a layer on the kube client's stack that
//! times every request, from sending it to its response headers, by verb and resource
//! (`imagestream_operator_apiserver_request_duration_seconds`).
//!
//! The apiserver's own `apiserver_request_duration_seconds` starts when the request arrives;
//! the difference is time spent in the operator's process and its connections, which on a
//! machine the apiserver shares counts as much as the apiserver's own (issue 17's breakdown).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::controller::Metrics;

/// Builds the operator's client from `config`, every request timed into `metrics`.
pub fn client(config: kube::Config, metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&Timed(metrics))
        .build())
}

/// The layer: wraps a service so each request is observed in [`Metrics`].
#[derive(Clone)]
pub struct Timed(pub Arc<Metrics>);

impl<S> Layer<S> for Timed {
    type Service = TimedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimedService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TimedService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request<B>> for TimedService<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (verb, resource) = classify(
            request.method().as_str(),
            request.uri().path(),
            request.uri().query(),
        );
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            metrics.apiserver_request(verb, &resource, started.elapsed());
            result
        })
    }
}

/// The verb (`WATCH` for a watch, else the method) and the resource with its subresource
/// (`imagestreams/status`) of a request to the apiserver, as its own metrics label them.
pub fn classify(method: &str, path: &str, query: Option<&str>) -> (&'static str, String) {
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match method {
        _ if watch => "WATCH",
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "OTHER",
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/group/version/...
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return (verb, "other".into()),
    };
    let rest = match rest {
        ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
        _ => rest,
    };
    let resource = match rest {
        [] => "other".to_string(),
        [resource] | [resource, _] => (*resource).to_string(),
        [resource, _, subresource, ..] => format!("{resource}/{subresource}"),
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn requests_are_named_as_the_apiserver_names_them() {
        let cases = [
            (
                (
                    "PUT",
                    "/apis/image.openshift.io/v1/namespaces/a/imagestreams/s/status",
                    None,
                ),
                ("PUT", "imagestreams/status"),
            ),
            (
                (
                    "POST",
                    "/apis/image.openshift.io/v1/namespaces/a/imagestreamtags",
                    None,
                ),
                ("POST", "imagestreamtags"),
            ),
            (
                ("POST", "/apis/image.openshift.io/v1/images", None),
                ("POST", "images"),
            ),
            (
                (
                    "GET",
                    "/apis/image.openshift.io/v1/images",
                    Some("watch=true&resourceVersion=1"),
                ),
                ("WATCH", "images"),
            ),
            (
                ("POST", "/apis/events.k8s.io/v1/namespaces/a/events", None),
                ("POST", "events"),
            ),
            (("GET", "/api/v1/namespaces/a", None), ("GET", "namespaces")),
            (("GET", "/api/v1/namespaces", None), ("GET", "namespaces")),
            (("GET", "/version", None), ("GET", "other")),
        ];
        for ((method, path, query), (verb, resource)) in cases {
            assert_eq!(
                classify(method, path, query),
                (verb, resource.to_string()),
                "{method} {path}"
            );
        }
    }
}
