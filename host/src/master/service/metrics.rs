//! The master's state as Prometheus metrics (`GET /metrics`, text format 0.0.4), so a lab's
//! monitoring can graph and alert on devices going Bad, queues growing and workers dropping
//! off without scraping pages.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::ServiceResult;

/// Escapes a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl super::Service {
    /// Every metric, as Prometheus's text format.
    pub fn metrics(&self) -> ServiceResult<String> {
        let store = self.store()?;
        let devices = store.devices()?;
        let workers = store.workers()?;
        let jobs = store.job_counts()?;
        drop(store);
        let mut out = String::new();

        family(
            &mut out,
            "basalt_devices",
            "gauge",
            "Devices by device type, state and health.",
        );
        let mut by_kind: BTreeMap<(String, &str, &str), u64> = BTreeMap::new();
        for d in &devices {
            *by_kind
                .entry((d.device_type.clone(), d.state.as_str(), d.health.as_str()))
                .or_default() += 1;
        }
        for ((device_type, state, health), count) in by_kind {
            let _ = writeln!(
                out,
                "basalt_devices{{device_type=\"{}\",state=\"{state}\",health=\"{health}\"}} {count}",
                label(&device_type)
            );
        }

        family(
            &mut out,
            "basalt_device_power",
            "gauge",
            "Devices by the power state last read back (on, off, unknown).",
        );
        let mut power: BTreeMap<&str, u64> = BTreeMap::new();
        for d in &devices {
            *power.entry(d.power_state.as_str()).or_default() += 1;
        }
        for (state, count) in power {
            let _ = writeln!(
                out,
                "basalt_device_power{{state=\"{}\"}} {count}",
                label(state)
            );
        }

        family(
            &mut out,
            "basalt_worker_up",
            "gauge",
            "1 when the worker's slave is online, by worker and health.",
        );
        for w in &workers {
            let _ = writeln!(
                out,
                "basalt_worker_up{{worker=\"{}\",health=\"{}\"}} {}",
                label(&w.hostname),
                w.health.as_str(),
                u8::from(w.state == crate::store::WorkerState::Online)
            );
        }

        family(
            &mut out,
            "basalt_jobs",
            "gauge",
            "Jobs by state, health and device type (finished jobs included).",
        );
        for (state, health, device_type, count) in &jobs {
            let _ = writeln!(
                out,
                "basalt_jobs{{state=\"{}\",health=\"{}\",device_type=\"{}\"}} {count}",
                label(state),
                label(health),
                label(device_type)
            );
        }

        family(
            &mut out,
            "basalt_queue_length",
            "gauge",
            "Jobs waiting for a device, by device type.",
        );
        let mut queue: BTreeMap<&str, u64> = BTreeMap::new();
        for (state, _, device_type, count) in &jobs {
            if state == "submitted" {
                *queue.entry(device_type.as_str()).or_default() += count;
            }
        }
        for (device_type, count) in queue {
            let _ = writeln!(
                out,
                "basalt_queue_length{{device_type=\"{}\"}} {count}",
                label(device_type)
            );
        }
        family(
            &mut out,
            "basalt_job_log_write_failures_total",
            "counter",
            "Job log appends that failed (a full or failing disk) since the master started.",
        );
        let _ = writeln!(
            out,
            "basalt_job_log_write_failures_total {}",
            self.log_faults.failures()
        );
        family(
            &mut out,
            "basalt_job_logs_waiting",
            "gauge",
            "Jobs whose log could not be written and that wait for space.",
        );
        let _ = writeln!(
            out,
            "basalt_job_logs_waiting {}",
            self.log_faults.waiting().len()
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped_as_prometheus_wants() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
