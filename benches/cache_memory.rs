//! Heap bytes per object in the operator's reflector caches (issue 8: RSS at 10,000 streams),
//! so the scale benchmark's RSS can be split by what holds it.
//!
//! Reads lists dumped from a cluster (for example one the scale benchmark filled), loads each
//! into a reflector store the way the operator caches it (streams and Images without
//! `managedFields`) and counts the bytes the allocator hands out for it. Views are measured
//! twice: as the metadata stores the operator kept until issue 8 (labels, owners and
//! `managedFields` dropped), and as the [`ViewIndex`] it keeps now.
//!
//! ```text
//! for k in imagestreams images imagestreamtags imagetags imagestreamimages imagestreamlayers; do
//!   kubectl get --raw /apis/image.openshift.io/v1/$k > DIR/$k.json   # cluster-scoped or all namespaces
//! done
//! cargo bench --bench cache_memory -- DIR
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{PartialObjectMeta, TypeMeta};
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use imagestream_operator::api::{
    Image, ImageStream, ImageStreamImage, ImageStreamLayers, ImageStreamTag, ImageTag,
};
use imagestream_operator::names;
use imagestream_operator::stream::image_index::ImageIndex;
use imagestream_operator::stream::view_index::ViewIndex;

/// Counts live bytes: as requested, and as glibc chunks (8-byte header, 16-byte steps,
/// 32 bytes at least).
struct Counting;

static REQUESTED: AtomicUsize = AtomicUsize::new(0);
static CHUNKS: AtomicUsize = AtomicUsize::new(0);

fn chunk(size: usize) -> usize {
    (size + 8).div_ceil(16).max(2) * 16
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        REQUESTED.fetch_add(layout.size(), Ordering::Relaxed);
        CHUNKS.fetch_add(chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: forwarded as received
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        REQUESTED.fetch_sub(layout.size(), Ordering::Relaxed);
        CHUNKS.fetch_sub(chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: forwarded as received
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> (usize, usize) {
    (
        REQUESTED.load(Ordering::Relaxed),
        CHUNKS.load(Ordering::Relaxed),
    )
}

struct Row {
    kind: &'static str,
    count: usize,
    json: usize,
    requested: usize,
    chunks: usize,
}

/// Loads `DIR/<file>.json` into a store of `K`, each object shaped by `shape` first.
fn measure<K>(dir: &Path, file: &'static str, shape: fn(&mut K)) -> Row
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let text = std::fs::read_to_string(dir.join(format!("{file}.json")))
        .unwrap_or_else(|e| panic!("{file}.json: {e}"));
    let list: serde_json::Value = serde_json::from_str(&text).expect("a JSON list");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let json: usize = items
        .iter()
        .map(|i| serde_json::to_vec(i).map_or(0, |v| v.len()))
        .sum();
    let (store, mut writer) = reflector::store::<K>();
    let before = live();
    for item in &items {
        let mut object = K::deserialize(item).expect(file);
        shape(&mut object);
        writer.apply_watcher_event(&Event::Apply(object));
    }
    let after = live();
    assert_eq!(store.state().len(), items.len());
    let row = Row {
        kind: file,
        count: items.len(),
        json,
        requested: after.0 - before.0,
        chunks: after.1 - before.1,
    };
    drop((store, writer));
    row
}

/// Loads the views of `DIR/<file>.json` into a [`ViewIndex`], the operator's view cache.
fn measure_index(dir: &Path, file: &'static str, kind: &'static str) -> Row {
    let text = std::fs::read_to_string(dir.join(format!("{file}.json")))
        .unwrap_or_else(|e| panic!("{file}.json: {e}"));
    let list: serde_json::Value = serde_json::from_str(&text).expect("a JSON list");
    let metas: Vec<ObjectMeta> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| ObjectMeta::deserialize(&i["metadata"]).expect(file))
        .collect();
    let json: usize = metas
        .iter()
        .map(|m| serde_json::to_vec(m).map_or(0, |v| v.len()))
        .sum();
    let mut index = ViewIndex::default();
    let before = live();
    for meta in &metas {
        index.put(meta);
    }
    let after = live();
    assert_eq!(index.streams().is_empty(), metas.is_empty());
    Row {
        kind,
        count: metas.len(),
        json,
        requested: after.0 - before.0,
        chunks: after.1 - before.1,
    }
}

/// The [`ImageIndex`] of `DIR/imagestreams.json`: each stream and the Images its history
/// shows (children of lists aside).
fn measure_image_index(dir: &Path) -> Row {
    let text = std::fs::read_to_string(dir.join("imagestreams.json")).expect("imagestreams.json");
    let list: serde_json::Value = serde_json::from_str(&text).expect("a JSON list");
    let streams: Vec<((String, String), Vec<String>)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| ImageStream::deserialize(i).expect("imagestreams"))
        .map(|s| {
            let images = s
                .status
                .iter()
                .flat_map(|st| &st.tags)
                .flat_map(|t| &t.items)
                .map(|e| names::image(&e.image))
                .collect();
            ((s.namespace().unwrap_or_default(), s.name_any()), images)
        })
        .collect();
    let count = streams.len();
    let mut index = ImageIndex::default();
    let before = live();
    for (stream, images) in streams {
        index.set(stream, images);
    }
    let after = live();
    Row {
        kind: "image index (per stream)",
        count,
        json: 0,
        requested: after.0 - before.0,
        chunks: after.1 - before.1,
    }
}

fn lean<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// As the operator's metadata watch delivers a view, and as `lean_view` leaves it.
fn lean_view<K: Resource>(view: &mut PartialObjectMeta<K>) {
    view.types = Some(TypeMeta {
        api_version: "meta.k8s.io/v1".into(),
        kind: "PartialObjectMetadata".into(),
    });
    let meta = view.meta_mut();
    meta.managed_fields = None;
    meta.labels = None;
    meta.owner_references = None;
}

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .expect("usage: cache_memory DIR");
    let dir = Path::new(&dir);
    let rows = [
        measure::<ImageStream>(dir, "imagestreams", lean),
        measure::<Image>(dir, "images", lean),
        measure::<PartialObjectMeta<ImageStreamTag>>(dir, "imagestreamtags", lean_view),
        measure::<PartialObjectMeta<ImageTag>>(dir, "imagetags", lean_view),
        measure::<PartialObjectMeta<ImageStreamImage>>(dir, "imagestreamimages", lean_view),
        measure::<PartialObjectMeta<ImageStreamLayers>>(dir, "imagestreamlayers", lean_view),
    ];
    let views = [
        ("imagestreamtags", "imagestreamtags (index)"),
        ("imagetags", "imagetags (index)"),
        ("imagestreamimages", "imagestreamimages (index)"),
        ("imagestreamlayers", "imagestreamlayers (index)"),
    ];
    let indexes: Vec<Row> = views
        .iter()
        .map(|(file, kind)| measure_index(dir, file, kind))
        .collect();
    println!(
        "| cache | objects | JSON bytes/object | heap bytes/object (requested) | heap bytes/object (glibc chunks) | total (chunks) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    print(&rows, "all, views as metadata stores");
    print(&rows[..2], "streams and Images");
    print(&indexes, "views as indexes");
    print(&[measure_image_index(dir)], "image index");
}

fn print(rows: &[Row], total_label: &str) {
    let mut total = 0;
    for r in rows {
        let per = |b: usize| b.checked_div(r.count).unwrap_or(0);
        total += r.chunks;
        println!(
            "| {} | {} | {} | {} | {} | {:.1} MiB |",
            r.kind,
            r.count,
            per(r.json),
            per(r.requested),
            per(r.chunks),
            r.chunks as f64 / 1048576.0
        );
    }
    println!(
        "| {total_label} | | | | | {:.1} MiB |",
        total as f64 / 1048576.0
    );
}
