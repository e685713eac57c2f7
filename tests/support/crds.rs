//! Installs the operator's CRDs into a test cluster and gives dynamic access to its kinds.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
    discovery::Scope,
};
use tokio::sync::OnceCell;

const FIELD_MANAGER: &str = "imagestream-operator-tests";

/// Applies every CRD of `imagestream_operator::crd::all()` (server-side apply, so concurrent
/// test processes agree) and waits until each is Established. Idempotent; done once per process.
pub async fn install(client: &Client) {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let crds = imagestream_operator::crd::all();
        for crd in &crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &params, &Patch::Apply(crd))
                .await
                .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        }
        for crd in &crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            wait_established(&api, &name, Duration::from_secs(60)).await;
        }
        // The apiserver serves a new CRD's resource a moment after Established.
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
}

/// Waits until the CRD has condition Established=True; panics with its conditions otherwise.
pub async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let crd = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get CRD {name}: {e}"));
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "CRD {name} not Established: {conditions:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The CRD serving `kind`, from the operator's own list.
pub fn crd_for_kind(kind: &str) -> CustomResourceDefinition {
    imagestream_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD serves kind {kind}"))
}

/// A dynamic API for `kind` in `namespace` (ignored for cluster-scoped kinds).
pub fn dynamic_api(
    client: &Client,
    kind: &str,
    namespace: &str,
) -> (Api<DynamicObject>, ApiResource, Scope) {
    let crd = crd_for_kind(kind);
    let version = crd
        .spec
        .versions
        .first()
        .map(|v| v.name.clone())
        .unwrap_or_default();
    let gvk = GroupVersionKind::gvk(&crd.spec.group, &version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
    if crd.spec.scope == "Namespaced" {
        (
            Api::namespaced_with(client.clone(), namespace, &resource),
            resource,
            Scope::Namespaced,
        )
    } else {
        (
            Api::all_with(client.clone(), &resource),
            resource,
            Scope::Cluster,
        )
    }
}
