//! The codec against what Python's xmlrpc.client writes and against malformed input.

use super::*;

fn call(params: &str) -> Result<MethodCall, XmlRpcError> {
    parse_call(&format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>m.n</methodName>\n<params>\n{params}</params>\n</methodCall>\n"
    ))
}

#[test]
fn reads_every_type_python_sends() {
    let parsed = call(
        "<param><value><int>42</int></value></param>\
         <param><value><i4>-7</i4></value></param>\
         <param><value><boolean>1</boolean></value></param>\
         <param><value>bare &amp; text</value></param>\
         <param><value><string></string></value></param>\
         <param><value><nil/></value></param>\
         <param><value><double>1.5</double></value></param>\
         <param><value><base64>aGVsbG8=\n</base64></value></param>\
         <param><value><array><data><value><i4>1</i4></value><value>x</value></data></array></value></param>\
         <param><value><struct><member><name>k</name><value><boolean>0</boolean></value></member></struct></value></param>",
    )
    .expect("valid call");
    assert_eq!(parsed.name, "m.n");
    assert_eq!(
        parsed.params,
        vec![
            Value::Int(42),
            Value::Int(-7),
            Value::Bool(true),
            Value::String("bare & text".into()),
            Value::String(String::new()),
            Value::Nil,
            Value::Double(1.5),
            Value::Base64(b"hello".to_vec()),
            Value::Array(vec![Value::Int(1), Value::String("x".into())]),
            Value::structure([("k", Value::Bool(false))]),
        ]
    );
}

#[test]
fn a_call_without_params_has_none() {
    let parsed = parse_call("<methodCall><methodName>system.version</methodName></methodCall>")
        .expect("valid call");
    assert_eq!(parsed.params, Vec::<Value>::new());
}

#[test]
fn malformed_documents_say_what_is_wrong() {
    for (body, expected) in [
        ("", "ends before"),
        ("<methodCall><methodName>x</methodName>", "ends before"),
        ("<methodResponse/>", "not <methodCall>"),
        ("<methodCall></methodCall>", "no <methodName>"),
        ("<methodCall><methodName>x</methodName><params><param><value><int>z</int></value></param></params></methodCall>", "not an integer"),
        ("<methodCall><methodName>x</methodName><params><param><value><blob/></value></param></params></methodCall>", "not an XML-RPC type"),
        ("<methodCall><methodName>x</methodName><params><param><value><base64>!!</base64></value></param></params></methodCall>", "not base64"),
        ("<a></b>", "well-formed"),
    ] {
        let error = parse_call(body).expect_err(body).to_string();
        assert!(error.contains(expected), "{body:?}: {error}");
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let depth = 10_000;
    let body = format!(
        "<methodCall><methodName>x</methodName><params><param>{}{}</param></params></methodCall>",
        "<value><array><data>".repeat(depth),
        "</data></array></value>".repeat(depth)
    );
    let error = parse_call(&body).expect_err("too deep").to_string();
    assert!(error.contains("nested deeper"), "{error}");
}

#[test]
fn responses_round_trip_through_the_parser() {
    let value = Value::structure([
        ("id", Value::Int(3)),
        ("big", Value::Int(1 << 40)),
        ("text", Value::String("a <b> & c\r\n".into())),
        ("when", Value::DateTime("20261125T10:00:00".into())),
        ("log", Value::Base64(vec![0, 1, 2, 255])),
        ("none", Value::Nil),
        ("list", Value::Array(vec![Value::Bool(true)])),
    ]);
    let written = response(&value);
    // Reuse the call parser on the same value encoding.
    let body = written.replace("methodResponse", "methodCall").replacen(
        "<params>",
        "<methodName>r</methodName><params>",
        1,
    );
    let parsed = parse_call(&body).expect("our own output parses");
    assert_eq!(parsed.params, vec![value]);
}

#[test]
fn control_characters_do_not_break_the_document() {
    let written = response(&Value::String("bell\u{7}".into()));
    assert!(written.contains("bell\u{fffd}"));
}

#[test]
fn faults_carry_code_and_string() {
    let written = fault(404, "job 9 does not exist");
    assert!(written.contains("<name>faultCode</name>\n<value><int>404</int></value>"));
    assert!(written.contains("job 9 does not exist"));
}

/// A small deterministic generator, so the mutation test needs no extra crate and always
/// tries the same inputs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_requests_are_errors_or_calls_never_panics() {
    let valid = "<?xml version='1.0'?><methodCall><methodName>scheduler.jobs.submit</methodName>\
        <params><param><value><string>job_name: x &amp; y</string></value></param>\
        <param><value><struct><member><name>k</name><value><array><data><value><i4>7</i4>\
        </value><value><base64>aGk=</base64></value><value><nil/></value></data></array>\
        </value></member></struct></value></param></params></methodCall>";
    assert!(parse_call(valid).is_ok());
    let pieces: &[&str] = &[
        "<",
        ">",
        "/",
        "&",
        ";",
        "&amp;",
        "&#0;",
        "&#x110000;",
        "<![CDATA[",
        "]]>",
        "<value>",
        "</value>",
        "<struct>",
        "<member>",
        "<name>",
        "<array>",
        "<data>",
        "\"",
        "'",
        "\u{0}",
        "\u{fffd}",
        "é",
        "<!--",
        "-->",
        "<?",
        "?>",
        "<!DOCTYPE x [<!ENTITY a \"b\">]>",
    ];
    let mut rng = Lcg(42);
    let (mut parsed, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut text = valid.to_owned();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(text.len() + 1);
            let at = (0..=at)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            match rng.below(3) {
                0 => text.insert_str(at, pieces[rng.below(pieces.len())]),
                1 => {
                    let end = (at + 1 + rng.below(12)).min(text.len());
                    let end = (end..=text.len())
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(text.len());
                    text.replace_range(at..end, "");
                }
                _ => text.truncate(at),
            }
        }
        match parse_call(&text) {
            Ok(_) => parsed += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    assert!(
        parsed > 0 && refused > 0,
        "parsed {parsed}, refused {refused}"
    );
}

#[test]
fn too_many_elements_are_refused() {
    let body = format!(
        "<methodCall><methodName>x</methodName><params><param><value><array><data>{}</data></array></value></param></params></methodCall>",
        "<value>x</value>".repeat(250_000)
    );
    let error = parse_call(&body).expect_err("too many").to_string();
    assert!(error.contains("more than"), "{error}");
}
