//! Rendering and parsing LAVA's 69 test device dictionaries with LAVA's templates.
//!
//! Run with `cargo xtask bench render`. Cold: a fresh engine per device (templates read and
//! compiled every time, as a process rendering one device pays). Warm: one engine rendering
//! every device again and again (templates cached, as the master does). LAVA's Python Jinja2
//! takes about 3.4 ms per device on the same files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use basalt::template::{extends_target, SearchPath, TemplateEngine};
use serde_json::json;

struct Device {
    file: String,
    context: serde_json::Value,
}

fn main() {
    let lava = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/lava");
    let search = SearchPath::new(vec![lava.join("devices"), lava.join("device-types")]);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(lava.join("devices"))
        .unwrap_or_else(|e| panic!("{}: {e} (the LAVA fixtures are needed)", lava.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jinja2"))
        .collect();
    paths.sort();
    let devices: Vec<Device> = paths
        .iter()
        .map(|path| {
            let source = std::fs::read_to_string(path).expect("readable dictionary");
            let device_type = extends_target(&source).unwrap_or_default();
            Device {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                context: json!({
                    "scheduled_device_name": path.file_stem().unwrap().to_string_lossy(),
                    "scheduled_device_type": device_type.trim_end_matches(".jinja2"),
                }),
            }
        })
        .collect();
    let n = devices.len() as f64;

    let cold_rounds = 5;
    let start = Instant::now();
    for _ in 0..cold_rounds {
        for device in &devices {
            let engine = TemplateEngine::new(search.clone());
            engine
                .render(&device.file, &device.context)
                .expect("renders");
        }
    }
    let cold = start.elapsed().as_secs_f64() * 1000.0 / (n * f64::from(cold_rounds));

    let engine = TemplateEngine::new(search.clone());
    for device in &devices {
        engine
            .render(&device.file, &device.context)
            .expect("renders");
    }
    let mut warm_rounds: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..10 {
                for device in &devices {
                    engine
                        .render(&device.file, &device.context)
                        .expect("renders");
                }
            }
            start.elapsed().as_secs_f64() * 1000.0 / (n * 10.0)
        })
        .collect();
    warm_rounds.sort_by(f64::total_cmp);

    let mut render_only: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..10 {
                for device in &devices {
                    engine
                        .render_text(&device.file, &device.context)
                        .expect("renders");
                }
            }
            start.elapsed().as_secs_f64() * 1000.0 / (n * 10.0)
        })
        .collect();
    render_only.sort_by(f64::total_cmp);

    let texts: Vec<String> = devices
        .iter()
        .map(|d| engine.render_text(&d.file, &d.context).expect("renders"))
        .collect();
    let mut parse_only: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..10 {
                for text in &texts {
                    basalt::yaml11::from_str(text).expect("parses");
                }
            }
            start.elapsed().as_secs_f64() * 1000.0 / (n * 10.0)
        })
        .collect();
    parse_only.sort_by(f64::total_cmp);

    println!("render + parse of {} LAVA test devices", devices.len());
    println!("cold (fresh engine per device):  {cold:.3} ms/device");
    println!(
        "warm (cached templates):         {:.3} ms/device (median of 7 rounds; best {:.3})",
        warm_rounds[3], warm_rounds[0]
    );
    println!(
        "warm, render only (no parse):    {:.3} ms/device (median of 7 rounds)",
        render_only[3]
    );
    println!(
        "parse only (YAML 1.1 reader):     {:.3} ms/device (median of 7 rounds)",
        parse_only[3]
    );
}
