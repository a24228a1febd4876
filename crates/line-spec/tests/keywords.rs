//! The validator's OpenAPI keywords that LINE's messaging spec uses rarely or not at all (nullable, oneOf,
//! anyOf, additionalProperties, numeric bounds, implicit discriminator mapping), checked on a small document.

use line_spec::{SpecDoc, Violation, validate_schema_in};
use serde_json::json;

const DOC: &str = r##"
openapi: 3.0.0
components:
  schemas:
    Thing:
      type: object
      required: [id]
      additionalProperties: false
      properties:
        id: {type: string, pattern: "^t_[0-9]+$"}
        note: {type: string, nullable: true, maxLength: 3}
        count: {type: integer, minimum: 1, maximum: 10}
        ratio: {type: number, minimum: 0, maximum: 1, exclusiveMaximum: true}
        shape: {"$ref": "#/components/schemas/Shape"}
        either:
          oneOf:
            - {type: string}
            - {type: integer}
        any:
          anyOf:
            - {type: string, minLength: 2}
            - {type: boolean}
        labels:
          type: object
          additionalProperties: {type: string}
    Shape:
      type: object
      required: [kind]
      properties:
        kind: {type: string}
      discriminator:
        propertyName: kind
    Circle:
      allOf:
        - {"$ref": "#/components/schemas/Shape"}
        - type: object
          required: [r]
          properties:
            r: {type: number}
"##;

fn run(v: serde_json::Value) -> Vec<Violation> {
    let doc = SpecDoc::from_yaml(DOC).unwrap();
    validate_schema_in(&doc, "Thing", &v)
}

fn props(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|x| x.property.as_str()).collect()
}

#[test]
fn valid_thing() {
    let v = run(json!({"id": "t_1", "note": null, "count": 10, "ratio": 0.5,
                       "shape": {"kind": "Circle", "r": 2.0}, "either": 3, "any": true,
                       "labels": {"a": "b"}}));
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn nullable_and_null() {
    assert!(run(json!({"id": "t_1", "note": null})).is_empty());
    let v = run(json!({"id": null}));
    assert_eq!(props(&v), vec!["id"]);
    assert_eq!(v[0].message, "must not be null");
}

#[test]
fn additional_properties() {
    let v = run(json!({"id": "t_1", "extra": 1}));
    assert_eq!(props(&v), vec!["extra"]);
    let v = run(json!({"id": "t_1", "labels": {"a": 1}}));
    assert_eq!(props(&v), vec!["labels.a"]);
}

#[test]
fn numeric_and_string_bounds() {
    let v = run(json!({"id": "x", "count": 0, "ratio": 1.0, "note": "abcd"}));
    let mut got = props(&v);
    got.sort();
    assert_eq!(got, vec!["count", "id", "note", "ratio"], "{v:?}");
    let v = run(json!({"id": "t_1", "count": 2.5}));
    assert_eq!(props(&v), vec!["count"]);
    assert!(
        run(json!({"id": "t_1", "count": 2.0})).is_empty(),
        "2.0 is an integer"
    );
}

#[test]
fn one_of_and_any_of() {
    let v = run(json!({"id": "t_1", "either": true}));
    assert_eq!(props(&v), vec!["either"]);
    let v = run(json!({"id": "t_1", "any": "a"}));
    assert_eq!(props(&v), vec!["any"]);
    assert!(run(json!({"id": "t_1", "any": "ab"})).is_empty());
}

#[test]
fn discriminator_without_mapping_uses_schema_names() {
    let v = run(json!({"id": "t_1", "shape": {"kind": "Circle"}}));
    assert_eq!(props(&v), vec!["shape.r"]);
    let v = run(json!({"id": "t_1", "shape": {"kind": "Square"}}));
    assert_eq!(props(&v), vec!["shape.kind"]);
    let v = run(json!({"id": "t_1", "shape": {}}));
    assert_eq!(props(&v), vec!["shape.kind"]);
}
