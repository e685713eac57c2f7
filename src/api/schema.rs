//! Schema helpers shared by the kinds: free-form objects, base64 byte strings, embedded full
//! objects (an `Image` inside an `ImageStreamTag`, …), null-tolerant lists, and the final
//! clean-up every generated CRD goes through.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DESCRIPTION: &str = "metadata is the standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// OpenShift's `runtime.RawExtension` (`Image.dockerImageMetadata`): any JSON object, kept
/// as written (`x-kubernetes-preserve-unknown-fields`). Nullable, because Go marshals an
/// empty RawExtension as `null`; atomic for server-side apply, as upstream's
/// `patchStrategy=replace`.
pub(crate) fn raw_extension(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
        "x-kubernetes-map-type": "atomic",
    })
}

/// A Go `[]byte`: a base64 string, as Kubernetes serialises it.
pub(crate) fn byte_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "byte" })
}

/// A Go `[]byte` that validation requires to be non-empty.
pub(crate) fn non_empty_byte_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "byte", "minLength": 1 })
}

/// A Go `[][]byte`: a list of base64 strings.
pub(crate) fn byte_strings(generator: &mut SchemaGenerator) -> Schema {
    let items = byte_string(generator).to_value();
    json_schema!({ "type": "array", "items": items })
}

/// The schema of a full object embedded in another one (`ImageStreamTag.image`,
/// `ImageStreamImport.status.import`, …): the kind's own fields (`T`), plus `metadata` as a
/// complete ObjectMeta and the `apiVersion`/`kind` strings our serialiser writes. Not marked
/// `x-kubernetes-embedded-resource`, because upstream's nested objects carry no `apiVersion`
/// or `kind` and that marker would require them.
pub(crate) fn embedded<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = T::json_schema(generator);
    let metadata = {
        let mut meta = generator.subschema_for::<ObjectMeta>().to_value();
        if let Some(obj) = meta.as_object_mut() {
            obj.insert("description".into(), METADATA_DESCRIPTION.into());
        }
        meta
    };
    let obj = schema.ensure_object();
    obj.insert("type".into(), "object".into());
    let properties = obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(properties) = properties.as_object_mut() {
        properties.insert(
            "apiVersion".into(),
            json!({ "type": "string", "description": API_VERSION_DESCRIPTION }),
        );
        properties.insert(
            "kind".into(),
            json!({ "type": "string", "description": KIND_DESCRIPTION }),
        );
        properties.insert("metadata".into(), metadata);
    }
    // Our types need `metadata` to read an embedded object back; upstream always writes it.
    let required = obj
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(required) = required.as_array_mut()
        && !required.iter().any(|r| r == "metadata")
    {
        required.push("metadata".into());
    }
    schema
}

/// [`embedded`], for a field that may be `null` (a Go pointer without `omitempty`).
pub(crate) fn nullable_embedded<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = embedded::<T>(generator);
    schema.insert("nullable".into(), true.into());
    schema
}

/// A list of [`embedded`] objects.
pub(crate) fn embedded_list<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let items = embedded::<T>(generator).to_value();
    json_schema!({ "type": "array", "items": items })
}

/// Deserialises `null` as the type's default: for Go slices and maps without `omitempty`,
/// which upstream writes as `null` when empty.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A `skip_serializing_if` for `#[serde(default)]` fields that Go marks `omitempty`.
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Makes a derived CRD ready to install:
/// - removes every `default` keyword (schemars derives them from `#[serde(default)]`, but an
///   apiserver-applied default would change objects as written; defaulting is the mutating
///   webhook's job);
/// - drops `optional_root` from the root's `required` list (the generated root struct requires
///   `spec`, but upstream's ImageStream `spec` is optional; our type reads a missing one as the
///   default).
pub(crate) fn finalize(
    mut crd: CustomResourceDefinition,
    optional_root: &[&str],
) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            strip_defaults(schema);
            if let Some(required) = schema.required.as_mut() {
                required.retain(|r| !optional_root.contains(&r.as_str()));
                if required.is_empty() {
                    schema.required = None;
                }
            }
        }
    }
    crd
}

fn strip_defaults(schema: &mut JSONSchemaProps) {
    schema.default = None;
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_defaults(child);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => strip_defaults(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(strip_defaults),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(item)) = schema.additional_properties.as_mut() {
        strip_defaults(item);
    }
    for list in [
        schema.all_of.as_mut(),
        schema.any_of.as_mut(),
        schema.one_of.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        list.iter_mut().for_each(strip_defaults);
    }
    if let Some(not) = schema.not.as_mut() {
        strip_defaults(not);
    }
}
