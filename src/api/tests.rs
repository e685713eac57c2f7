//! Unit tests of the API types: CRD names and shape, structural schemas, the full fixtures in
//! `tests/fixtures/api/` (round trip, schema validity, every field set) and the real-world
//! OpenShift files in the compat corpus.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;

// ---------------------------------------------------------------------------------------
// Helpers

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every CRD has a schema");
    serde_json::to_value(schema).expect("schema serialises")
}

fn crd_of(kind: &str) -> CustomResourceDefinition {
    crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/api")
}

/// Every fixture file with its parsed content.
fn fixtures() -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures/api exists")
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            (p, value)
        })
        .collect()
}

/// The compat corpus of real-world ImageStream files (same location as the cluster tests).
fn compat_dir() -> PathBuf {
    std::env::var_os("IMAGESTREAM_COMPAT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/compat/openshift-imagestreams")
        })
}

/// Deserialises `value` as `K`, serialises it back and checks nothing changed, both ways.
fn round_trip<K>(value: &Value) -> Result<(), String>
where
    K: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(value.clone()).map_err(|e| format!("parse: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("serialise: {e}"))?;
    if back != *value {
        return Err(format!(
            "differs after a round trip: {}",
            diff(value, &back).join("; ")
        ));
    }
    let again: K = serde_json::from_value(back).map_err(|e| format!("parse again: {e}"))?;
    if again != typed {
        return Err("the typed value changed after a second round trip".into());
    }
    Ok(())
}

fn round_trip_kind(kind: &str, value: &Value) -> Result<(), String> {
    match kind {
        "Image" => round_trip::<Image>(value),
        "ImageSignature" => round_trip::<ImageSignature>(value),
        "ImageStream" => round_trip::<ImageStream>(value),
        "ImageStreamTag" => round_trip::<ImageStreamTag>(value),
        "ImageTag" => round_trip::<ImageTag>(value),
        "ImageStreamImage" => round_trip::<ImageStreamImage>(value),
        "ImageStreamLayers" => round_trip::<ImageStreamLayers>(value),
        "ImageStreamImport" => round_trip::<ImageStreamImport>(value),
        "ImageStreamMapping" => round_trip::<ImageStreamMapping>(value),
        other => Err(format!("unknown kind {other}")),
    }
}

/// Paths where two JSON values differ.
fn diff(want: &Value, have: &Value) -> Vec<String> {
    fn walk(path: &str, want: &Value, have: &Value, out: &mut Vec<String>) {
        match (want, have) {
            (Value::Object(w), Value::Object(h)) => {
                for key in w.keys().chain(h.keys()).collect::<BTreeSet<_>>() {
                    let p = format!("{path}.{key}");
                    match (w.get(key), h.get(key)) {
                        (Some(a), Some(b)) => walk(&p, a, b, out),
                        (Some(a), None) => out.push(format!("{p}: {a} dropped")),
                        (None, Some(b)) => out.push(format!("{p}: {b} added")),
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(w), Value::Array(h)) if w.len() == h.len() => {
                for (i, (a, b)) in w.iter().zip(h).enumerate() {
                    walk(&format!("{path}[{i}]"), a, b, out);
                }
            }
            _ if want == have => {}
            _ => out.push(format!("{path}: {want} became {have}")),
        }
    }
    let mut out = Vec::new();
    walk("", want, have, &mut out);
    out
}

/// `value` without keys whose value is `null`, and the paths of those keys.
fn without_nulls(value: &Value, path: &str, removed: &mut Vec<String>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| {
                    let p = format!("{path}.{k}");
                    if v.is_null() {
                        removed.push(p);
                        None
                    } else {
                        Some((k.clone(), without_nulls(v, &p, removed)))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| without_nulls(v, &format!("{path}[{i}]"), removed))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// CRD names and shape

/// kind, plural, singular, scope, short names, categories, status subresource
type Names = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

/// kind, then each column's name, JSONPath and priority
type Columns = (&'static str, &'static [(&'static str, &'static str, i32)]);

#[test]
fn crds_have_upstream_names_scopes_and_subresources() {
    let want: [Names; 9] = [
        ("Image", "images", "image", "Cluster", &[], &[], false),
        (
            "ImageSignature",
            "imagesignatures",
            "imagesignature",
            "Cluster",
            &[],
            &[],
            false,
        ),
        (
            "ImageStream",
            "imagestreams",
            "imagestream",
            "Namespaced",
            &["is"],
            &["all"],
            true,
        ),
        (
            "ImageStreamTag",
            "imagestreamtags",
            "imagestreamtag",
            "Namespaced",
            &["istag"],
            &[],
            false,
        ),
        (
            "ImageTag",
            "imagetags",
            "imagetag",
            "Namespaced",
            &["itag"],
            &[],
            true,
        ),
        (
            "ImageStreamImage",
            "imagestreamimages",
            "imagestreamimage",
            "Namespaced",
            &["isimage"],
            &[],
            false,
        ),
        (
            "ImageStreamLayers",
            "imagestreamlayers",
            "imagestreamlayer",
            "Namespaced",
            &[],
            &[],
            false,
        ),
        (
            "ImageStreamImport",
            "imagestreamimports",
            "imagestreamimport",
            "Namespaced",
            &["isi"],
            &[],
            false,
        ),
        (
            "ImageStreamMapping",
            "imagestreammappings",
            "imagestreammapping",
            "Namespaced",
            &[],
            &[],
            false,
        ),
    ];
    let all = crds();
    assert_eq!(all.len(), want.len(), "one CRD per kind");
    for (kind, plural, singular, scope, short, categories, status) in want {
        let crd = crd_of(kind);
        let names = &crd.spec.names;
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(&*format!("{plural}.{GROUP}"))
        );
        assert_eq!(names.plural, plural, "{kind}");
        assert_eq!(names.singular.as_deref(), Some(singular), "{kind}");
        assert_eq!(crd.spec.scope, scope, "{kind}");
        assert_eq!(
            names.short_names.clone().unwrap_or_default(),
            short,
            "{kind}"
        );
        assert_eq!(
            names.categories.clone().unwrap_or_default(),
            categories,
            "{kind}"
        );
        let version = &crd.spec.versions[0];
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(version.name, VERSION);
        assert!(version.served && version.storage, "{kind}");
        let has_status = version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some());
        assert_eq!(has_status, status, "{kind} status subresource");
    }
}

#[test]
fn printer_columns_are_the_oc_get_columns() {
    let want: [Columns; 5] = [
        ("Image", &[("Image Reference", ".dockerImageReference", 0)]),
        (
            "ImageStream",
            &[
                ("Image Repository", ".status.dockerImageRepository", 0),
                ("Tags", ".status.tags[*].tag", 0),
                ("Updated", ".status.tags[0].items[0].created", 0),
            ],
        ),
        (
            "ImageStreamTag",
            &[
                ("Image Reference", ".image.dockerImageReference", 0),
                ("Updated", ".image.metadata.creationTimestamp", 0),
                ("Image Name", ".image.metadata.name", 1),
            ],
        ),
        (
            "ImageTag",
            &[
                ("Spec", ".spec.from.name", 0),
                ("Status", ".status.items[0].image", 0),
                ("History", ".status.items[1].image", 0),
                ("Updated", ".status.items[0].created", 0),
                ("Import Failure", ".status.conditions[0].reason", 1),
            ],
        ),
        (
            "ImageStreamImage",
            &[
                ("Updated", ".image.metadata.creationTimestamp", 0),
                ("Image Reference", ".image.dockerImageReference", 1),
                ("Image Name", ".image.metadata.name", 1),
            ],
        ),
    ];
    for (kind, columns) in want {
        let crd = crd_of(kind);
        let have: Vec<(String, String, i32)> = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.json_path, c.priority.unwrap_or(0)))
            .collect();
        let want: Vec<(String, String, i32)> = columns
            .iter()
            .map(|(n, p, prio)| (n.to_string(), p.to_string(), *prio))
            .collect();
        assert_eq!(have, want, "{kind}");
    }
    for kind in [
        "ImageSignature",
        "ImageStreamLayers",
        "ImageStreamImport",
        "ImageStreamMapping",
    ] {
        assert!(
            crd_of(kind).spec.versions[0]
                .additional_printer_columns
                .is_none(),
            "{kind} keeps the default NAME/AGE columns, as upstream"
        );
    }
}

#[test]
fn every_crd_serialises_with_serde_saphyr() {
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let yaml = serde_saphyr::to_string(&crd).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back: CustomResourceDefinition =
            serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, crd, "{name} reads back from its YAML");
    }
}

// ---------------------------------------------------------------------------------------
// Structural schemas

/// Keywords a CRD schema may not use, or that we never want (`default`: objects must read back
/// exactly as written).
const FORBIDDEN_KEYWORDS: [&str; 13] = [
    "$ref",
    "$schema",
    "definitions",
    "dependencies",
    "patternProperties",
    "additionalItems",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "default",
    "uniqueItems",
    "x-kubernetes-embedded-resource",
];

fn check_structural(path: &str, node: &Value, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{path}: not a schema object"));
        return;
    };
    for keyword in FORBIDDEN_KEYWORDS {
        if obj.contains_key(keyword) {
            errors.push(format!("{path}: uses `{keyword}`"));
        }
    }
    let free_form = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    let ty = obj.get("type").and_then(Value::as_str);
    if ty.is_none() && !free_form {
        errors.push(format!("{path}: no type"));
    }
    if let Some(nullable) = obj.get("nullable")
        && !nullable.is_boolean()
    {
        errors.push(format!("{path}: nullable is not a boolean"));
    }
    let properties = obj.get("properties").and_then(Value::as_object);
    match obj.get("additionalProperties") {
        None => {}
        Some(Value::Object(_)) if properties.is_some() => {
            errors.push(format!("{path}: both properties and additionalProperties"))
        }
        Some(additional @ Value::Object(_)) => {
            check_structural(&format!("{path}{{}}"), additional, errors)
        }
        Some(other) => errors.push(format!("{path}: additionalProperties is {other}")),
    }
    if (properties.is_some() || obj.contains_key("additionalProperties")) && ty != Some("object") {
        errors.push(format!("{path}: properties on a non-object"));
    }
    for required in obj
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = required.as_str().unwrap_or_default();
        if !properties.is_some_and(|p| p.contains_key(name)) {
            errors.push(format!("{path}: required `{name}` is not a property"));
        }
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        for v in values {
            let ok = match ty {
                Some("string") => v.is_string(),
                Some("integer") => v.is_i64(),
                Some("boolean") => v.is_boolean(),
                _ => false,
            };
            if !ok {
                errors.push(format!("{path}: enum value {v} does not match type {ty:?}"));
            }
        }
    }
    match obj.get("items") {
        Some(items) if ty == Some("array") => {
            check_structural(&format!("{path}[]"), items, errors);
            if obj.get("x-kubernetes-list-type") == Some(&json!("map")) {
                let keys = obj
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let item_required = items.get("required").and_then(Value::as_array);
                if keys.is_empty() {
                    errors.push(format!("{path}: list-map without keys"));
                }
                for key in keys {
                    if !item_required.is_some_and(|r| r.contains(&key)) {
                        errors.push(format!("{path}: list-map key {key} is not required"));
                    }
                    let key_type =
                        items["properties"][key.as_str().unwrap_or_default()]["type"].as_str();
                    if !matches!(key_type, Some("string" | "integer" | "boolean")) {
                        errors.push(format!("{path}: list-map key {key} is not a scalar"));
                    }
                }
            }
        }
        Some(_) => errors.push(format!("{path}: items on a non-array")),
        None if ty == Some("array") => errors.push(format!("{path}: array without items")),
        None => {}
    }
    for rule in obj
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if rule["rule"].as_str().is_none_or(str::is_empty) {
            errors.push(format!("{path}: validation rule without a rule"));
        }
        if let Some(field_path) = rule.get("fieldPath").and_then(Value::as_str)
            && resolve(node, field_path).is_none()
        {
            errors.push(format!("{path}: fieldPath {field_path} does not resolve"));
        }
    }
    for (name, child) in properties.into_iter().flatten() {
        check_structural(&format!("{path}.{name}"), child, errors);
    }
}

/// The schema node a simple JSONPath (`.a.b[0].c[*].d`) points at.
fn resolve<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = schema;
    for segment in path.trim_start_matches('.').split('.') {
        let (field, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], segment[i..].matches('[').count()),
            None => (segment, 0),
        };
        node = node.get("properties")?.get(field)?;
        for _ in 0..indexes {
            node = node.get("items")?;
        }
    }
    Some(node)
}

#[test]
fn schemas_are_structural() {
    let mut errors = Vec::new();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let schema = schema_of(&crd);
        check_structural(&name, &schema, &mut errors);
        assert_eq!(schema["type"], "object", "{name}: the root is an object");
        assert!(
            schema["properties"].get("metadata").is_none(),
            "{name}: the root metadata schema is the apiserver's"
        );
        // The apiserver allows only these keywords on the root schema.
        for key in schema.as_object().into_iter().flatten().map(|(k, _)| k) {
            if ![
                "description",
                "type",
                "title",
                "required",
                "properties",
                "x-kubernetes-validations",
            ]
            .contains(&key.as_str())
            {
                errors.push(format!("{name}: `{key}` is not allowed at the root"));
            }
        }
        let version = &crd.spec.versions[0];
        for column in version.additional_printer_columns.iter().flatten() {
            if resolve(&schema, &column.json_path).is_none() {
                errors.push(format!(
                    "{name}: column {} path {} does not resolve",
                    column.name, column.json_path
                ));
            }
        }
        for field in version.selectable_fields.iter().flatten() {
            match resolve(&schema, &field.json_path) {
                Some(node) if node["type"] == "string" => {}
                _ => errors.push(format!(
                    "{name}: selectable field {} is not a string",
                    field.json_path
                )),
            }
        }
    }
    assert!(
        errors.is_empty(),
        "non-structural schemas:\n{}",
        errors.join("\n")
    );
}

#[test]
fn upstream_validation_is_in_the_schemas() {
    let stream = schema_of(&crd_of("ImageStream"));
    let tag = &stream["properties"]["spec"]["properties"]["tags"];
    assert_eq!(tag["x-kubernetes-list-type"], "map");
    assert_eq!(tag["x-kubernetes-list-map-keys"], json!(["name"]));
    let tag = &tag["items"];
    assert_eq!(
        tag["properties"]["from"]["required"],
        json!(["kind", "name"])
    );
    assert_eq!(tag["properties"]["from"]["nullable"], true);
    assert_eq!(tag["properties"]["generation"]["nullable"], true);
    assert_eq!(tag["properties"]["annotations"]["nullable"], true);
    assert_eq!(
        tag["properties"]["referencePolicy"]["properties"]["type"]["enum"],
        json!(["", "Source", "Local"])
    );
    assert_eq!(
        tag["properties"]["importPolicy"]["properties"]["importMode"]["enum"],
        json!(["", "Legacy", "PreserveOriginal"])
    );
    let status_tags = &stream["properties"]["status"]["properties"]["tags"];
    assert_eq!(status_tags["x-kubernetes-list-map-keys"], json!(["tag"]));
    assert_eq!(
        status_tags["items"]["properties"]["items"]["nullable"],
        true
    );
    assert!(
        stream.get("required").is_none(),
        "an ImageStream without spec is valid"
    );

    let image = schema_of(&crd_of("Image"));
    assert_eq!(
        image["properties"]["dockerImageMetadata"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    let layers = schema_of(&crd_of("ImageStreamLayers"));
    assert_eq!(layers["properties"]["blobs"]["type"], "object");
    assert!(layers["properties"]["blobs"]["additionalProperties"].is_object());
    assert!(layers["properties"]["images"]["additionalProperties"].is_object());

    let mapping = schema_of(&crd_of("ImageStreamMapping"));
    assert_eq!(mapping["required"], json!(["image", "tag"]));
    let embedded = &mapping["properties"]["image"];
    assert!(embedded["properties"]["metadata"]["properties"]["name"].is_object());
    assert!(
        embedded.get("required").is_some_and(|r| !r
            .as_array()
            .is_some_and(|r| r.contains(&json!("dockerImageReference")))),
        "an embedded image may leave dockerImageReference to the server"
    );
}

#[test]
fn no_kind_has_schema_defaults() {
    fn walk(node: &Value, path: &str, found: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if map.contains_key("default") && map.contains_key("type") {
                    found.push(path.to_string());
                }
                for (k, v) in map {
                    walk(v, &format!("{path}.{k}"), found);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, path, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for crd in crds() {
        walk(&schema_of(&crd), &crd.spec.names.kind, &mut found);
    }
    assert!(found.is_empty(), "schema defaults: {found:?}");
}

// ---------------------------------------------------------------------------------------
// A small validator for the subset of OpenAPI our schemas use (types, required, nullable,
// enum, minLength, minimum, pattern-free). CEL rules are checked separately.

fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        if schema["nullable"] != true {
            errors.push(format!("{path}: null but not nullable"));
        }
        return;
    }
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        if schema["type"] == "object" && !value.is_object() {
            errors.push(format!("{path}: not an object"));
        }
        return;
    }
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64(),
        Some("boolean") => value.is_boolean(),
        Some("number") => value.is_number(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{path}: {value} is not a {}", schema["type"]));
        return;
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(value)
    {
        errors.push(format!("{path}: {value} not in {values:?}"));
    }
    if let (Some(min), Some(s)) = (schema["minLength"].as_u64(), value.as_str())
        && (s.chars().count() as u64) < min
    {
        errors.push(format!("{path}: shorter than {min}"));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
        && n < min
    {
        errors.push(format!("{path}: below {min}"));
    }
    if let Some(map) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap_or_default();
            if !map.contains_key(key) {
                errors.push(format!("{path}: missing required {key}"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (key, child) in map {
                match properties.get(key) {
                    Some(child_schema) => {
                        validate(child_schema, child, &format!("{path}.{key}"), errors)
                    }
                    // The root's apiVersion/kind/metadata are the apiserver's.
                    None if path.is_empty()
                        && ["apiVersion", "kind", "metadata"].contains(&key.as_str()) => {}
                    None => errors.push(format!("{path}.{key}: unknown field (would be pruned)")),
                }
            }
        } else if schema["additionalProperties"].is_object() {
            for (key, child) in map {
                validate(
                    &schema["additionalProperties"],
                    child,
                    &format!("{path}{{{key}}}"),
                    errors,
                );
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
        if schema["x-kubernetes-list-type"] == "map" {
            let keys = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut seen = BTreeSet::new();
            for item in items {
                let key: Vec<String> = keys
                    .iter()
                    .map(|k| item[k.as_str().unwrap_or_default()].to_string())
                    .collect();
                if !seen.insert(key.clone()) {
                    errors.push(format!("{path}: duplicate list-map key {key:?}"));
                }
            }
        }
    }
}

/// Every property path of a schema, not descending into ObjectMeta/ListMeta (`metadata`) or
/// free-form objects. `[]` marks list items, `{}` map values.
fn schema_paths(schema: &Value, path: &str, out: &mut BTreeSet<String>) {
    if path.ends_with(".metadata") || schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    for (name, child) in schema["properties"].as_object().into_iter().flatten() {
        let p = format!("{path}.{name}");
        out.insert(p.clone());
        schema_paths(child, &p, out);
    }
    if schema["items"].is_object() {
        schema_paths(&schema["items"], &format!("{path}[]"), out);
    }
    if schema["additionalProperties"].is_object() {
        schema_paths(&schema["additionalProperties"], &format!("{path}{{}}"), out);
    }
}

/// The schema paths a value sets (non-null, and non-empty for lists and maps).
fn set_paths(schema: &Value, value: &Value, path: &str, out: &mut BTreeSet<String>) {
    if value.is_null() || path.ends_with(".metadata") {
        return;
    }
    if let (Some(properties), Some(map)) = (schema["properties"].as_object(), value.as_object()) {
        for (name, child) in map {
            if let Some(child_schema) = properties.get(name) {
                let p = format!("{path}.{name}");
                let empty = child.is_null()
                    || child.as_array().is_some_and(Vec::is_empty)
                    || (child_schema["additionalProperties"].is_object()
                        && child.as_object().is_some_and(|m| m.is_empty()));
                if !empty {
                    out.insert(p.clone());
                }
                set_paths(child_schema, child, &p, out);
            }
        }
    }
    if let Some(items) = value.as_array() {
        for item in items {
            set_paths(&schema["items"], item, &format!("{path}[]"), out);
        }
    }
    if schema["additionalProperties"].is_object()
        && let Some(map) = value.as_object()
    {
        for item in map.values() {
            set_paths(
                &schema["additionalProperties"],
                item,
                &format!("{path}{{}}"),
                out,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Full fixtures

#[test]
fn a_full_fixture_of_every_kind_round_trips_exactly() {
    let fixtures = fixtures();
    let mut kinds = BTreeSet::new();
    let mut failures = Vec::new();
    for (path, value) in &fixtures {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        assert_eq!(value["apiVersion"], API_VERSION, "{}", path.display());
        if let Err(e) = round_trip_kind(&kind, value) {
            failures.push(format!("{}: {e}", path.display()));
        }
        kinds.insert(kind);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let want: BTreeSet<String> = crds().into_iter().map(|c| c.spec.names.kind).collect();
    assert_eq!(kinds, want, "one fixture per kind at least");
}

#[test]
fn fixtures_are_valid_for_their_schemas() {
    let mut errors = Vec::new();
    for (path, value) in fixtures() {
        let schema = schema_of(&crd_of(value["kind"].as_str().unwrap_or_default()));
        let mut found = Vec::new();
        validate(&schema, &value, "", &mut found);
        errors.extend(
            found
                .into_iter()
                .map(|e| format!("{}: {e}", path.display())),
        );
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Whether `path` lies under an image's `dockerImageLayers` whose sibling
/// `dockerImageManifests` is set, or the other way round.
fn covered_by_the_alternative(path: &str, set: &BTreeSet<String>) -> bool {
    const PAIR: [(&str, &str); 2] = [
        (".dockerImageLayers", ".dockerImageManifests"),
        (".dockerImageManifests", ".dockerImageLayers"),
    ];
    PAIR.iter().any(|(this, other)| {
        path.find(this).is_some_and(|at| {
            let rest = &path[at + this.len()..];
            (rest.is_empty() || rest.starts_with('['))
                && set.contains(&format!("{}{other}", &path[..at]))
        })
    })
}

#[test]
fn fixtures_set_every_field() {
    // An image is either single-platform (layers) or a manifest list (manifests): fixtures of
    // the same kind together cover both, except where the other one is embedded.
    let mut missing = Vec::new();
    for crd in crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = schema_of(&crd);
        let mut all = BTreeSet::new();
        schema_paths(&schema, "", &mut all);
        let mut set = BTreeSet::new();
        for (_, value) in fixtures().iter().filter(|(_, v)| v["kind"] == kind) {
            set_paths(&schema, value, "", &mut set);
        }
        for path in all.difference(&set) {
            if !covered_by_the_alternative(path, &set) {
                missing.push(format!("{kind}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields no fixture sets:\n{}",
        missing.join("\n")
    );
}

#[test]
fn docker_image_metadata_has_the_docker10_shape() {
    let (_, value) = fixtures()
        .into_iter()
        .find(|(p, _)| p.ends_with("image.json"))
        .expect("image.json");
    let raw = value["dockerImageMetadata"].clone();
    let typed: DockerImage = serde_json::from_value(raw.clone()).expect("docker10 metadata parses");
    assert_eq!(
        serde_json::to_value(&typed).expect("serialises"),
        raw,
        "every docker10 field is typed"
    );
    assert_eq!(typed.kind, "DockerImage");
    assert_eq!(typed.api_version, "image.openshift.io/1.0");

    let image: Image = serde_json::from_value(value).expect("image parses");
    assert_eq!(
        image.spec.docker_image_metadata().expect("parses"),
        Some(typed.clone())
    );
    let mut copy = ImageFields::default();
    copy.set_docker_image_metadata(&typed).expect("stores");
    assert_eq!(copy.docker_image_metadata_version, "1.0");
    assert_eq!(copy.docker_image_metadata, Some(raw));

    let empty = DockerImage::default();
    assert_eq!(
        serde_json::to_value(&empty).expect("serialises"),
        json!({"kind": "DockerImage", "apiVersion": "image.openshift.io/1.0", "Id": "", "ContainerConfig": {}}),
        "Go writes Id and ContainerConfig even when empty"
    );
}

// ---------------------------------------------------------------------------------------
// Upstream wire details

#[test]
fn upstream_nulls_read_back_and_are_not_written() {
    let value = json!({
        "apiVersion": API_VERSION,
        "kind": "ImageStream",
        "metadata": {"name": "s"},
        "spec": {"tags": [{"name": "t", "annotations": null, "generation": null, "from": null,
                           "importPolicy": {}, "referencePolicy": {"type": ""}}]},
        "status": {"dockerImageRepository": "", "tags": [{"tag": "t", "items": null,
            "conditions": [{"type": "ImportSuccess", "status": "False", "lastTransitionTime": null, "generation": 1}]}]}
    });
    let stream: ImageStream = serde_json::from_value(value).expect("nulls parse");
    let tag = &stream.spec.tags[0];
    assert_eq!(
        (tag.annotations.as_ref(), tag.generation, tag.from.as_ref()),
        (None, None, None)
    );
    let status = stream.status.as_ref().expect("status");
    assert!(status.tags[0].items.is_empty());
    let back = serde_json::to_value(&stream).expect("serialises");
    assert_eq!(
        back["spec"]["tags"][0],
        json!({"name": "t", "importPolicy": {}, "referencePolicy": {"type": ""}})
    );
    assert_eq!(back["status"]["tags"][0]["items"], json!([]));
}

#[test]
fn an_image_stream_without_spec_reads_as_the_default_spec() {
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "ImageStream", "metadata": {"name": "mydockertest"}
    }))
    .expect("no spec is fine");
    assert_eq!(stream.spec, ImageStreamSpec::default());
    let null_spec: ImageStream = serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "ImageStream", "metadata": {"name": "s"}, "spec": null
    }))
    .expect("a null spec is fine");
    assert_eq!(null_spec.spec, ImageStreamSpec::default());
}

#[test]
fn embedded_objects_without_apiversion_and_kind_read_back() {
    // Upstream's nested objects carry no apiVersion/kind; ours add them when writing.
    let tag: ImageStreamTag = serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "ImageStreamTag", "metadata": {"name": "ruby.latest"},
        "tag": null, "generation": 0, "lookupPolicy": {"local": false},
        "image": {"metadata": {"name": "sha256.abc", "creationTimestamp": null},
                  "dockerImageReference": "quay.io/a/b@sha256:abc", "dockerImageMetadata": null}
    }))
    .expect("upstream-shaped istag parses");
    let image = tag.spec.image.as_ref().expect("image");
    assert_eq!(image.metadata.name.as_deref(), Some("sha256.abc"));
    assert_eq!(image.spec.docker_image_metadata, None);
    let back = serde_json::to_value(&tag).expect("serialises");
    assert_eq!(back["image"]["kind"], "Image");
    assert_eq!(back["image"]["apiVersion"], API_VERSION);
}

#[test]
fn enums_keep_the_empty_string() {
    let policy: TagReferencePolicy = serde_json::from_value(json!({"type": ""})).expect("parses");
    assert_eq!(policy.type_, TagReferencePolicyType::Unset);
    assert_eq!(
        serde_json::to_value(policy).expect("serialises"),
        json!({"type": ""})
    );
    let import: TagImportPolicy =
        serde_json::from_value(json!({"importMode": ""})).expect("parses");
    assert_eq!(import.import_mode, ImportMode::Unset);
    assert_eq!(serde_json::to_value(import).expect("serialises"), json!({}));
    assert!(serde_json::from_value::<TagImportPolicy>(json!({"importMode": "Bogus"})).is_err());
}

// ---------------------------------------------------------------------------------------
// Real-world files

/// A rich library file: an ImageStreamTag `from`, `importPolicy: {}`, `referencePolicy.type`
/// both `""` and `Local`, `"generation": null`, `"annotations": null`, and the Go marshaller's
/// `"creationTimestamp": null` and `status.dockerImageRepository: ""`.
const RICH_COMPAT_FILE: &str = "library/official__sso__imagestreams__sso76-openshift-rhel8.json";

#[test]
fn a_real_library_file_round_trips_except_for_its_nulls() {
    let path = compat_dir().join(RICH_COMPAT_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} (set IMAGESTREAM_COMPAT_DIR): {e}", path.display()));
    let original: Value = serde_json::from_str(&text).expect("valid JSON");
    let stream: ImageStream =
        serde_json::from_value(original.clone()).expect("parses as ImageStream");

    let tags = &stream.spec.tags;
    assert_eq!(tags.len(), 2);
    assert_eq!(
        tags[0].from.as_ref().map(|f| f.kind.as_str()),
        Some("ImageStreamTag")
    );
    assert_eq!(
        tags[0].reference_policy.type_,
        TagReferencePolicyType::Unset
    );
    assert_eq!(
        tags[1].reference_policy.type_,
        TagReferencePolicyType::Local
    );
    assert_eq!(tags[0].generation, None);

    // The one unavoidable difference: optional fields that are unset are omitted rather than
    // written as `null` (rust-guide 1.7: a typed server-side apply must not claim them). For
    // the apiserver and for OpenShift, an absent field and `null` mean the same here.
    let mut nulls = Vec::new();
    let want = without_nulls(&original, "", &mut nulls);
    assert_eq!(
        nulls,
        [
            ".metadata.creationTimestamp",
            ".spec.tags[0].annotations",
            ".spec.tags[0].generation",
            ".spec.tags[1].generation",
        ]
    );
    let have = serde_json::to_value(&stream).expect("serialises");
    assert_eq!(have, want, "{}", diff(&want, &have).join("; "));

    let mut errors = Vec::new();
    validate(
        &schema_of(&crd_of("ImageStream")),
        &original,
        "",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
}

/// Checks `ours` equals `original` except for fields Go would also have written (empty values
/// added) and `null`s dropped.
fn only_go_defaults_added(original: &Value, ours: &Value, path: &str, out: &mut Vec<String>) {
    fn is_empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Number(n) => n.as_i64() == Some(0),
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.values().all(is_empty),
        }
    }
    match (original, ours) {
        (Value::Object(o), Value::Object(h)) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                match h.get(k) {
                    Some(w) => only_go_defaults_added(v, w, &p, out),
                    None if v.is_null() => {}
                    None => out.push(format!("{p} dropped")),
                }
            }
            for (k, v) in h {
                if !o.contains_key(k) && !is_empty(v) {
                    out.push(format!("{path}.{k}: {v} added"));
                }
            }
        }
        (Value::Array(o), Value::Array(h)) if o.len() == h.len() => {
            for (i, (a, b)) in o.iter().zip(h).enumerate() {
                only_go_defaults_added(a, b, &format!("{path}[{i}]"), out);
            }
        }
        _ if original == ours => {}
        _ => out.push(format!("{path}: {original} became {ours}")),
    }
}

#[test]
fn every_real_world_image_stream_parses_validates_and_round_trips() {
    let root = compat_dir();
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{} (set IMAGESTREAM_COMPAT_DIR): {e}", dir.display()))
        {
            let path = entry.expect("readable directory").path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "json" || e == "yaml" || e == "yml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 40, "compat corpus under {}", root.display());

    let schema = schema_of(&crd_of("ImageStream"));
    let mut failures = Vec::new();
    let mut streams = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let docs: Vec<Value> = if file.extension().is_some_and(|e| e == "json") {
            vec![serde_json::from_str(&text).expect("valid JSON")]
        } else {
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        };
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let items = match doc.get("items").and_then(Value::as_array) {
                Some(items) => items.clone(),
                None => vec![doc],
            };
            for mut original in items {
                let name = format!("{} {}", file.display(), original["metadata"]["name"]);
                // What a CRD cannot serve (see the cluster tests): the legacy group-less API
                // versions, and the 2020-era top-level `labels` that is no ImageStream field.
                original["apiVersion"] = json!(API_VERSION);
                if let Some(map) = original.as_object_mut() {
                    map.remove("labels");
                }
                streams += 1;
                let mut errors = Vec::new();
                validate(&schema, &original, "", &mut errors);
                // metadata is the apiserver's: a saved object's server fields are not ours.
                let stream: ImageStream = match serde_json::from_value(original.clone()) {
                    Ok(s) => s,
                    Err(e) => {
                        failures.push(format!("{name}: does not parse: {e}"));
                        continue;
                    }
                };
                let ours = serde_json::to_value(&stream).expect("serialises");
                only_go_defaults_added(&original, &ours, "", &mut errors);
                let again: ImageStream = serde_json::from_value(ours).expect("parses again");
                if again != stream {
                    errors.push("changed on a second round trip".into());
                }
                failures.extend(errors.into_iter().map(|e| format!("{name}: {e}")));
            }
        }
    }
    assert!(
        streams >= 80,
        "expected the whole corpus, found {streams} streams"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
