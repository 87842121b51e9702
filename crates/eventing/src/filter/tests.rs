use std::collections::BTreeMap;

use wisp_api::eventing::SubscriptionsApiFilter;

use super::*;

type F = SubscriptionsApiFilter;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn exact(k: &str, v: &str) -> F {
    F {
        exact: map(&[(k, v)]),
        ..F::default()
    }
}

fn prefix(k: &str, v: &str) -> F {
    F {
        prefix: map(&[(k, v)]),
        ..F::default()
    }
}

fn suffix(k: &str, v: &str) -> F {
    F {
        suffix: map(&[(k, v)]),
        ..F::default()
    }
}

fn cesql(e: &str) -> F {
    F {
        cesql: e.to_owned(),
        ..F::default()
    }
}

fn all(fs: Vec<F>) -> F {
    F {
        all: fs,
        ..F::default()
    }
}

fn any(fs: Vec<F>) -> F {
    F {
        any: fs,
        ..F::default()
    }
}

fn not(f: F) -> F {
    F {
        not: Some(Box::new(f)),
        ..F::default()
    }
}

/// The event every matching case runs against.
fn event(name: &str) -> Option<&'static str> {
    match name {
        "specversion" => Some("1.0"),
        "id" => Some("abc-123"),
        "type" => Some("com.github.push"),
        "source" => Some("https://github.com/knative/eventing"),
        "subject" => Some(""),
        "myext" => Some("Value"),
        "seq" => Some("10"),
        _ => None,
    }
}

fn matches(filters: Vec<F>, attributes: Option<BTreeMap<String, String>>) -> bool {
    compile(&filters, attributes.as_ref())
        .unwrap_or_else(|e| panic!("{e}"))
        .matches(&event)
}

#[test]
fn dialects_table() {
    let cases: Vec<(&str, Vec<F>, bool)> = vec![
        ("no filters", vec![], true),
        ("exact hit", vec![exact("type", "com.github.push")], true),
        (
            "exact is case-sensitive",
            vec![exact("myext", "value")],
            false,
        ),
        ("exact miss", vec![exact("type", "com.github.pull")], false),
        ("exact on absent attribute", vec![exact("nope", "x")], false),
        ("prefix hit", vec![prefix("type", "com.github.")], true),
        (
            "prefix whole value",
            vec![prefix("type", "com.github.push")],
            true,
        ),
        ("prefix miss", vec![prefix("type", "org.")], false),
        (
            "prefix on absent attribute",
            vec![prefix("nope", "x")],
            false,
        ),
        ("suffix hit", vec![suffix("source", "/eventing")], true),
        ("suffix miss", vec![suffix("source", "/serving")], false),
        (
            "suffix on absent attribute",
            vec![suffix("nope", "x")],
            false,
        ),
        (
            "cesql hit",
            vec![cesql("type LIKE 'com.github.%' AND seq > 5")],
            true,
        ),
        ("cesql miss", vec![cesql("seq > 50")], false),
        ("cesql non-boolean", vec![cesql("seq + 1")], false),
        ("cesql error is no match", vec![cesql("nope = 'x'")], false),
        (
            "cesql negated error is still no match",
            vec![cesql("NOT (nope = 'x')")],
            false,
        ),
        (
            "cesql exists",
            vec![cesql("EXISTS myext AND NOT EXISTS nope")],
            true,
        ),
        (
            "list is all: both",
            vec![exact("type", "com.github.push"), prefix("id", "abc")],
            true,
        ),
        (
            "list is all: one fails",
            vec![exact("type", "com.github.push"), prefix("id", "x")],
            false,
        ),
        (
            "all hit",
            vec![all(vec![exact("id", "abc-123"), suffix("type", ".push")])],
            true,
        ),
        (
            "all miss",
            vec![all(vec![exact("id", "abc-123"), suffix("type", ".pull")])],
            false,
        ),
        (
            "any hit",
            vec![any(vec![exact("id", "nope"), suffix("type", ".push")])],
            true,
        ),
        (
            "any miss",
            vec![any(vec![exact("id", "nope"), suffix("type", ".pull")])],
            false,
        ),
        ("not of a miss", vec![not(exact("type", "x"))], true),
        (
            "not of a hit",
            vec![not(exact("type", "com.github.push"))],
            false,
        ),
        (
            "not of an absent attribute",
            vec![not(exact("nope", "x"))],
            true,
        ),
        (
            "nesting",
            vec![any(vec![
                all(vec![exact("type", "x"), exact("id", "abc-123")]),
                all(vec![not(prefix("type", "org.")), cesql("myext = 'Value'")]),
            ])],
            true,
        ),
        (
            "nesting miss",
            vec![not(any(vec![
                exact("type", "x"),
                all(vec![prefix("id", "abc")]),
            ]))],
            false,
        ),
    ];
    for (name, filters, want) in cases {
        assert_eq!(matches(filters, None), want, "{name}");
    }
}

#[test]
fn legacy_attributes_table() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: Vec<Case> = vec![
        ("empty map matches all", &[], true),
        ("exact", &[("type", "com.github.push")], true),
        (
            "all keys must match",
            &[("type", "com.github.push"), ("id", "x")],
            false,
        ),
        ("case-sensitive", &[("type", "COM.GITHUB.PUSH")], false),
        ("no prefix semantics", &[("type", "com.github")], false),
        (
            "empty value matches any present value",
            &[("myext", "")],
            true,
        ),
        ("empty value needs the attribute", &[("nope", "")], false),
        (
            "empty value needs a non-empty value",
            &[("subject", "")],
            false,
        ),
        ("absent attribute", &[("nope", "x")], false),
    ];
    for (name, attrs, want) in cases {
        assert_eq!(matches(vec![], Some(map(attrs))), want, "{name}");
    }
}

#[test]
fn filters_win_over_attributes() {
    let attrs = Some(map(&[("type", "something.else")]));
    // The attributes alone would refuse the event; a non-empty `filters` replaces them.
    assert!(!matches(vec![], attrs.clone()));
    assert!(matches(vec![exact("id", "abc-123")], attrs.clone()));
    // And the other way round.
    let attrs = Some(map(&[("type", "com.github.push")]));
    assert!(!matches(vec![exact("id", "nope")], attrs));
}

#[test]
fn everything() {
    assert!(compile(&[], None).unwrap().is_everything());
    assert!(
        compile(&[], Some(&BTreeMap::new()))
            .unwrap()
            .is_everything()
    );
    assert!(
        !compile(&[exact("type", "x")], None)
            .unwrap()
            .is_everything()
    );
    assert!(Filter::default().matches(&|_| None));
}

#[test]
fn error_table() {
    let two = F {
        exact: map(&[("type", "a")]),
        cesql: "true".into(),
        ..F::default()
    };
    type Case<'a> = (
        &'a str,
        Vec<F>,
        Option<BTreeMap<String, String>>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "two dialects",
            vec![exact("type", "a"), two.clone()],
            None,
            "filters[1]",
            "multiple dialects found (exact, cesql)",
        ),
        (
            "no dialect",
            vec![F::default()],
            None,
            "filters[0]",
            "no dialect set",
        ),
        (
            "two keys in exact",
            vec![F {
                exact: map(&[("type", "a"), ("id", "b")]),
                ..F::default()
            }],
            None,
            "filters[0].exact",
            "exactly one attribute, found 2",
        ),
        (
            "bad attribute name",
            vec![exact("Type", "a")],
            None,
            "filters[0].exact[Type]",
            "invalid key name \"Type\"",
        ),
        (
            "attribute name starting with a digit",
            vec![prefix("1type", "a")],
            None,
            "filters[0].prefix[1type]",
            "invalid key name",
        ),
        (
            "empty prefix",
            vec![prefix("type", "")],
            None,
            "filters[0].prefix[type]",
            "must not be empty",
        ),
        (
            "empty suffix",
            vec![suffix("type", "")],
            None,
            "filters[0].suffix[type]",
            "must not be empty",
        ),
        (
            "empty exact",
            vec![exact("type", "")],
            None,
            "filters[0].exact[type]",
            "must not be empty",
        ),
        (
            "nested in all",
            vec![exact("id", "x"), all(vec![exact("id", "x"), F::default()])],
            None,
            "filters[1].all[1]",
            "no dialect set",
        ),
        (
            "nested in any and not",
            vec![any(vec![not(two.clone())])],
            None,
            "filters[0].any[0].not",
            "multiple dialects",
        ),
        (
            "bad cesql",
            vec![all(vec![cesql("type LIKE 123")])],
            None,
            "filters[0].all[0].cesql",
            "invalid CESQL expression: the pattern of LIKE must be a string literal (at offset 10)",
        ),
        (
            "bad legacy attribute, even when filters win",
            vec![exact("type", "a")],
            Some(map(&[("ok", "x"), ("Bad-Key", "x")])),
            "filter.attributes[Bad-Key]",
            "invalid key name",
        ),
        (
            "empty legacy attribute name",
            vec![],
            Some(map(&[("", "x")])),
            "filter.attributes[]",
            "invalid key name",
        ),
    ];
    for (name, filters, attrs, field, fragment) in cases {
        let err = compile(&filters, attrs.as_ref()).expect_err(name);
        assert_eq!(err.field, field, "{name}: {err}");
        assert!(err.message.contains(fragment), "{name}: {err}");
        assert_eq!(err.to_string(), format!("{}: {}", err.field, err.message));
    }
}

#[test]
fn filters_deserialised_from_trigger_yaml_compile() {
    let filters: Vec<F> = serde_json::from_value(serde_json::json!([
        {"any": [{"exact": {"type": "com.github.push"}}, {"prefix": {"type": "dev.knative."}}]},
        {"not": {"cesql": "source LIKE '%/serving'"}},
    ]))
    .unwrap();
    let filter = compile(&filters, None).unwrap();
    assert!(filter.matches(&event));
}

#[test]
fn compiled_filters_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Filter>();
    shareable::<crate::cesql::Expression>();
}
