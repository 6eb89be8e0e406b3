//! Rendering one device's dictionary the way LAVA's master does for a job: the job's context,
//! plus `scheduled_device_name` and `scheduled_device_type`, which templates print as the
//! configuration's `hostname` and `devicetype`. The master (START, device checks) and the CLI
//! (`basalt devices render`, `basalt run` on a dictionary) all render through here, so what a
//! job gets is what an admin previews.

use serde_json::{json, Value};

use crate::template::{Rendered, TemplateEngine, TemplateError};

/// Which device is rendered.
#[derive(Debug, Clone, Copy)]
pub struct DeviceName<'a> {
    /// Its hostname.
    pub hostname: &'a str,
    /// Its device type (the template it extends, without `.jinja2`).
    pub device_type: &'a str,
}

/// The job's context (an object, else empty) with the device's name and type added.
pub fn device_context(job_context: &Value, device: DeviceName<'_>) -> Value {
    let mut context = match job_context {
        Value::Object(_) => job_context.clone(),
        _ => json!({}),
    };
    if let Value::Object(map) = &mut context {
        map.insert("scheduled_device_name".into(), json!(device.hostname));
        map.insert("scheduled_device_type".into(), json!(device.device_type));
    }
    context
}

/// Renders `source`, the dictionary of `device` (known to the engine as `template_name`),
/// for a job with `job_context`.
pub fn render_device(
    engine: &TemplateEngine,
    template_name: &str,
    source: &str,
    device: DeviceName<'_>,
    job_context: &Value,
) -> Result<Rendered, TemplateError> {
    engine.render_source(template_name, source, &device_context(job_context, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_name_and_type_join_the_job_context_and_win_over_it() {
        let context = device_context(
            &json!({"arch": "arm64", "scheduled_device_name": "spoofed"}),
            DeviceName {
                hostname: "qemu01",
                device_type: "qemu",
            },
        );
        assert_eq!(
            context,
            json!({"arch": "arm64", "scheduled_device_name": "qemu01", "scheduled_device_type": "qemu"})
        );
        let context = device_context(
            &json!("not a mapping"),
            DeviceName {
                hostname: "b",
                device_type: "t",
            },
        );
        assert_eq!(context["scheduled_device_name"], "b");
    }
}
