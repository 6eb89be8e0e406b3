//! Reading a `<methodCall>`: the XML is first read into a small element tree (bounded depth),
//! then the tree is interpreted as XML-RPC.

use base64::Engine;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::{MethodCall, Value, XmlRpcError, MAX_DEPTH};

/// How many elements a request may have: each costs far more memory than its bytes, so a
/// body within the size limit could otherwise take hundreds of megabytes.
const MAX_ELEMENTS: usize = 200_000;

/// An element: its name, its child elements and its text (for leaves).
#[derive(Debug, Default)]
struct Element {
    name: String,
    children: Vec<Element>,
    text: String,
}

fn shape(message: impl Into<String>) -> XmlRpcError {
    XmlRpcError::Shape(message.into())
}

/// Reads the document's root element.
fn read_tree(body: &str) -> Result<Element, XmlRpcError> {
    let mut reader = Reader::from_str(body);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut elements = 0usize;
    let xml_error = |reader: &Reader<&[u8]>, e: quick_xml::Error| XmlRpcError::Xml {
        position: reader.error_position(),
        message: e.to_string(),
    };
    loop {
        let event = reader.read_event().map_err(|e| xml_error(&reader, e))?;
        match event {
            Event::Start(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(shape(format!("more than {MAX_ELEMENTS} elements")));
                }
                if stack.len() >= MAX_DEPTH * 3 {
                    return Err(shape(format!("nested deeper than {MAX_DEPTH} values")));
                }
                let name = std::str::from_utf8(start.name().as_ref())
                    .map_err(|_| shape("an element name is not UTF-8"))?
                    .to_owned();
                stack.push(Element {
                    name,
                    ..Element::default()
                });
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(shape("a closing tag without an opening one"));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(|e| xml_error(&reader, e))?;
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text);
                } else if !text.trim().is_empty() {
                    return Err(shape("text outside the root element"));
                }
            }
            Event::CData(data) => {
                let text = std::str::from_utf8(&data)
                    .map_err(|_| shape("CDATA is not UTF-8"))?
                    .to_owned();
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text);
                }
            }
            Event::Eof => return Err(shape("the document ends before its root element does")),
            // Declarations, comments, processing instructions, doctypes carry nothing.
            _ => {}
        }
    }
}

/// Parses an XML-RPC request body.
pub fn parse_call(body: &str) -> Result<MethodCall, XmlRpcError> {
    let root = read_tree(body)?;
    if root.name != "methodCall" {
        return Err(shape(format!(
            "the root element is <{}>, not <methodCall>",
            root.name
        )));
    }
    let name = root
        .children
        .iter()
        .find(|c| c.name == "methodName")
        .map(|c| c.text.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| shape("no <methodName>"))?;
    let mut params = Vec::new();
    if let Some(list) = root.children.iter().find(|c| c.name == "params") {
        for param in &list.children {
            if param.name != "param" {
                return Err(shape(format!("<{}> inside <params>", param.name)));
            }
            let value = only_child(param, "value")?;
            params.push(value_of(value, 0)?);
        }
    }
    Ok(MethodCall { name, params })
}

fn only_child<'a>(parent: &'a Element, name: &str) -> Result<&'a Element, XmlRpcError> {
    match parent.children.as_slice() {
        [child] if child.name == name => Ok(child),
        _ => Err(shape(format!(
            "<{}> must hold exactly one <{name}>",
            parent.name
        ))),
    }
}

/// Interprets a `<value>` element.
fn value_of(element: &Element, depth: usize) -> Result<Value, XmlRpcError> {
    if depth > MAX_DEPTH {
        return Err(shape(format!("nested deeper than {MAX_DEPTH} values")));
    }
    let typed = match element.children.as_slice() {
        [] => return Ok(Value::String(element.text.clone())),
        [typed] => typed,
        _ => return Err(shape("a <value> holds more than one type")),
    };
    let text = typed.text.as_str();
    let number = |text: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| shape(format!("<{}> {text:?} is not an integer", typed.name)))
    };
    Ok(match typed.name.as_str() {
        "int" | "i4" | "i8" => Value::Int(number(text)?),
        "boolean" => match text.trim() {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            other => return Err(shape(format!("<boolean> {other:?} is not 0 or 1"))),
        },
        "string" => Value::String(text.to_owned()),
        "double" => Value::Double(
            text.trim()
                .parse()
                .map_err(|_| shape(format!("<double> {text:?} is not a number")))?,
        ),
        "dateTime.iso8601" => Value::DateTime(text.trim().to_owned()),
        "base64" => {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            Value::Base64(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|e| shape(format!("<base64> is not base64: {e}")))?,
            )
        }
        "nil" => Value::Nil,
        "array" => {
            let data = only_child(typed, "data")?;
            let mut items = Vec::with_capacity(data.children.len());
            for item in &data.children {
                if item.name != "value" {
                    return Err(shape(format!("<{}> inside <data>", item.name)));
                }
                items.push(value_of(item, depth + 1)?);
            }
            Value::Array(items)
        }
        "struct" => {
            let mut members = Vec::with_capacity(typed.children.len());
            for member in &typed.children {
                if member.name != "member" {
                    return Err(shape(format!("<{}> inside <struct>", member.name)));
                }
                let name = member
                    .children
                    .iter()
                    .find(|c| c.name == "name")
                    .ok_or_else(|| shape("a <member> without <name>"))?;
                let value = member
                    .children
                    .iter()
                    .find(|c| c.name == "value")
                    .ok_or_else(|| shape("a <member> without <value>"))?;
                members.push((name.text.clone(), value_of(value, depth + 1)?));
            }
            Value::Struct(members)
        }
        other => return Err(shape(format!("<{other}> is not an XML-RPC type"))),
    })
}
