//! Behaviour the TCK (tests/cesql_tck.rs) leaves open: precedence, limits, positions,
//! overflow, Unicode, and the choices documented on the module.

use super::*;

fn run(src: &str, attrs: &[(&str, Value)]) -> (Value, Option<EvalErrorKind>) {
    let expr = Expression::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let (v, err) = expr.evaluate(&|name| {
        attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    });
    (v, err.map(|e| e.kind))
}

fn b(v: bool) -> Value {
    Value::Boolean(v)
}
fn i(v: i32) -> Value {
    Value::Integer(v)
}
fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

#[test]
fn evaluation_table() {
    use EvalErrorKind::*;
    let t = || b(true);
    let f = || b(false);
    type Case<'a> = (&'a str, Vec<(&'a str, Value)>, Value, Option<EvalErrorKind>);
    let cases: Vec<Case> = vec![
        // Prefix operators bind tightest (grammar order).
        ("NOT FALSE = FALSE", vec![], f(), None),
        ("NOT (FALSE = FALSE)", vec![], f(), None),
        ("NOT TRUE = FALSE", vec![], t(), None),
        ("-2 * 3", vec![], i(-6), None),
        // AND/OR/XOR share a level and group to the right.
        ("FALSE AND FALSE OR TRUE", vec![], f(), None),
        ("(FALSE AND FALSE) OR TRUE", vec![], t(), None),
        ("TRUE OR FALSE AND FALSE", vec![], t(), None),
        ("TRUE XOR TRUE XOR TRUE", vec![], t(), None),
        // Arithmetic is left-associative with the usual precedence.
        ("1 - 2 - 3", vec![], i(-4), None),
        ("8 / 2 / 2", vec![], i(2), None),
        ("2 + 3 * 4", vec![], i(14), None),
        ("4-1", vec![], i(3), None),
        ("-7 / 2", vec![], i(-3), None),
        ("-7 % 2", vec![], i(-1), None),
        ("7 % -2", vec![], i(1), None),
        ("+5 + 1", vec![], i(6), None),
        // LIKE and IN bind tighter than arithmetic and comparison.
        ("'ab' LIKE 'a%' = TRUE", vec![], t(), None),
        ("1 + 1 IN (1)", vec![], i(2), None),
        // Overflow.
        ("2147483647 + 1", vec![], i(0), Some(Math)),
        ("-2147483647 - 2", vec![], i(0), Some(Math)),
        ("65536 * 65536", vec![], i(0), Some(Math)),
        ("-2147483648 / -1", vec![], i(0), Some(Math)),
        ("-2147483648 % -1", vec![], i(0), None),
        ("- -2147483648", vec![], i(i32::MAX), Some(Math)),
        ("-2147483648", vec![], i(i32::MIN), None),
        ("INT('2147483648')", vec![], i(0), Some(Cast)),
        // Implicit Integer -> Boolean is refused; explicit BOOL converts.
        ("1 = TRUE", vec![], f(), Some(Cast)),
        ("TRUE = 1", vec![], t(), None),
        ("1 AND TRUE", vec![], f(), Some(Cast)),
        ("BOOL(2) AND TRUE", vec![], t(), None),
        // A failed cast goes on with the zero value; an operand's error stops the operator.
        ("'abc' OR TRUE", vec![], t(), Some(Cast)),
        ("'abc' + 1", vec![], i(1), Some(Cast)),
        ("1 IN ('abc', 1)", vec![], t(), Some(Cast)),
        ("1 IN (missing, 1)", vec![], f(), Some(MissingAttribute)),
        ("missing NOT IN (1)", vec![], f(), Some(MissingAttribute)),
        ("LENGTH(missing)", vec![], i(0), Some(MissingAttribute)),
        ("UPPER(missing)", vec![], s(""), Some(MissingAttribute)),
        ("TRUE OR missing", vec![], t(), None),
        ("FALSE OR missing", vec![], f(), Some(MissingAttribute)),
        ("FOO(1)", vec![], f(), Some(MissingFunction)),
        ("LEFT('abc')", vec![], f(), Some(MissingFunction)),
        (
            "SUBSTRING('abc', 1, 2, 3)",
            vec![],
            f(),
            Some(MissingFunction),
        ),
        ("LEFT('abc', 'x')", vec![], s(""), Some(Cast)),
        (
            "SUBSTRING('abc', 0, -1)",
            vec![],
            s(""),
            Some(FunctionEvaluation),
        ),
        // Functions: aliases, sdk-go extras, case-insensitive names.
        ("INTEGER('5') + int('1')", vec![], i(6), None),
        ("IS_INT('-12')", vec![], t(), None),
        ("IS_INT('1.5')", vec![], f(), None),
        ("IS_INT(TRUE)", vec![], f(), None),
        ("is_bool('FALSE')", vec![], t(), None),
        ("IS_BOOL(1)", vec![], f(), None),
        ("concat_ws('-', 1, TRUE, 'x')", vec![], s("1-true-x"), None),
        ("TRIM('\t a \n')", vec![], s("a"), None),
        ("TRIM('   ')", vec![], s(""), None),
        // Unicode counts characters.
        ("LENGTH('héllo')", vec![], i(5), None),
        ("LEFT('héllo', 2)", vec![], s("hé"), None),
        ("RIGHT('héllo', 4)", vec![], s("éllo"), None),
        ("SUBSTRING('héllo', 2, 3)", vec![], s("éll"), None),
        ("SUBSTRING('héllo', -4)", vec![], s("éllo"), None),
        ("UPPER('héllo')", vec![], s("HÉLLO"), None),
        ("'héllo' LIKE 'h_llo'", vec![], t(), None),
        // Attributes: lowercase lookup, typed values, strings cast on demand.
        ("MyExt = 'x'", vec![("myext", s("x"))], t(), None),
        ("EXISTS MyExt", vec![("myext", s("x"))], t(), None),
        ("seq + 1", vec![("seq", s("41"))], i(42), None),
        ("seq + 1", vec![("seq", s("forty"))], i(1), Some(Cast)),
        ("flag", vec![("flag", b(true))], t(), None),
        ("flag AND 'true'", vec![("flag", s("TRUE"))], t(), None),
        // Literals.
        ("'it''s'", vec![], s("it's"), None),
        (r#""say ""hi""""#, vec![], s("say \"hi\""), None),
        (r"'a\nb'", vec![], s(r"a\nb"), None),
        (r"'ab\\' LIKE 'ab\\'", vec![], t(), None),
    ];
    let mut failures = Vec::new();
    for (src, attrs, want, want_err) in cases {
        let got = run(src, &attrs);
        if got != (want.clone(), want_err) {
            failures.push(format!("{src}: got {got:?}, want {:?}", (want, want_err)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_errors_have_positions() {
    let cases: [(&str, usize, &str); 21] = [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("x LIKE 123", 7, "string literal"),
        ("x LIKE", 6, "after LIKE"),
        ("ABC(", 4, "expected an expression"),
        ("ABC(1 2)", 6, "',' or ')'"),
        ("a NOT b", 2, "LIKE or IN"),
        ("()", 1, "expected an expression"),
        ("(1", 2, "')'"),
        ("1)", 1, "unexpected ')'"),
        ("1 2", 2, "unexpected integer"),
        ("1 IN ()", 6, "must not be empty"),
        ("1 IN 1", 5, "'('"),
        ("2147483648", 0, "out of range"),
        ("-2147483649", 1, "out of range"),
        ("+'5'", 1, "integer after '+'"),
        ("EXISTS 1", 7, "attribute name"),
        ("EXISTS", 6, "attribute name"),
        ("a_b = 1", 0, "invalid attribute name"),
        ("foo1(2)", 0, "invalid function name"),
        ("a = = b", 4, "expected an expression"),
    ];
    for (src, pos, fragment) in cases {
        let err = Expression::parse(src).expect_err(src);
        assert_eq!(err.position, pos, "{src}: {err}");
        assert!(err.message.contains(fragment), "{src}: {err}");
    }
}

#[test]
fn depth_is_limited_but_flat_chains_are_not() {
    let deep = format!(
        "{}1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(Expression::parse(&deep).is_err());
    let ok = format!(
        "{}1{}",
        "(".repeat(MAX_DEPTH - 2),
        ")".repeat(MAX_DEPTH - 2)
    );
    assert!(Expression::parse(&ok).is_ok());
    let nots = format!("{}TRUE", "NOT ".repeat(MAX_DEPTH + 1));
    assert!(Expression::parse(&nots).is_err());
    let sums = vec!["1"; MAX_DEPTH + 2].join(" + ");
    assert!(Expression::parse(&sums).is_err());

    let ors = (0..1000)
        .map(|n| format!("type = 't{n}'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let expr = Expression::parse(&ors).unwrap();
    assert!(expr.matches(&|name| (name == "type").then_some("t999")));
    assert!(!expr.matches(&|name| (name == "type").then_some("t1000")));
}

#[test]
fn matches_needs_boolean_true_without_error() {
    let attrs = |name: &str| match name {
        "type" => Some("com.example.created"),
        "source" => Some("https://example.com/x"),
        "seq" => Some("10"),
        _ => None,
    };
    let cases = [
        ("type LIKE 'com.example.%'", true),
        ("type LIKE '%.deleted'", false),
        ("seq = 10 AND seq > 9", true),
        ("seq", false),
        ("1 + 1", false),
        ("'true'", false),
        ("myext = 'x'", false),
        ("NOT (myext = 'x')", false),
        ("NOT EXISTS myext", true),
        ("1 / 0 = 0", false),
        ("source LIKE 'https://%' OR missing = 'x'", true),
    ];
    let built: Vec<(Expression, bool)> = cases
        .iter()
        .map(|(src, want)| (Expression::parse(src).unwrap(), *want))
        .collect();
    for (expr, want) in &built {
        assert_eq!(expr.matches(&attrs), *want, "{expr}");
    }
}

#[test]
fn errors_explain_themselves() {
    let expr = Expression::parse("myext = 'x'").unwrap();
    let (v, err) = expr.evaluate(&|_| None);
    assert_eq!(v, Value::Boolean(false));
    let err = err.unwrap();
    assert_eq!(err.kind, EvalErrorKind::MissingAttribute);
    assert!(err.to_string().contains("\"myext\""), "{err}");

    let (_, err) = Expression::parse("NOT 10").unwrap().evaluate(&|_| None);
    let err = err.unwrap().to_string();
    assert!(err.contains("Integer 10 to Boolean"), "{err}");
    assert!(err.contains("BOOL(x)"), "{err}");

    let (_, err) = Expression::parse("nope(1, 2)").unwrap().evaluate(&|_| None);
    assert!(err.unwrap().message.contains("NOPE taking 2"));
}

#[test]
fn expressions_round_trip_their_source() {
    let expr: Expression = "type = 'x'".parse().unwrap();
    assert_eq!(expr.source(), "type = 'x'");
    assert_eq!(expr.to_string(), "type = 'x'");
    assert_eq!(Value::from(7).to_string(), "7");
    assert_eq!(Value::from("x").value_type(), Type::String);
    assert_eq!(Type::Integer.zero(), Value::Integer(0));
}
