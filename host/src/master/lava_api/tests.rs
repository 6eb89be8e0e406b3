//! LAVA's method shapes and fault codes, called as lavacli calls them.

use super::*;
use crate::master::service::tests::{lab, service, DICTIONARY, JOB};

fn fault_code(result: MethodResult) -> i32 {
    result.expect_err("a fault").code
}

fn text(value: &Value) -> &str {
    value
        .as_text()
        .unwrap_or_else(|| panic!("not text: {value:?}"))
}

#[test]
fn the_version_is_one_lavacli_parses_as_a_modern_lava() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _, _) = service(dir.path());
    let version = call(&service, &Caller::Anonymous, "system.version", vec![]).unwrap();
    // lavacli: re.match(r"(?P<major>20\d{2})\.(?P<minor>\d{1,2})", version)
    let pattern = regex::Regex::new(r"^(20\d{2})\.(\d{1,2})").unwrap();
    let captures = pattern.captures(text(&version)).expect("YYYY.MM first");
    let release: (u32, u32) = (captures[1].parse().unwrap(), captures[2].parse().unwrap());
    assert!(release >= (2023, 3), "{release:?}");
}

#[test]
fn whoami_names_the_caller_or_is_nil() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    assert_eq!(
        call(&service, &admin, "system.whoami", vec![]).unwrap(),
        Value::from("admin")
    );
    assert_eq!(
        call(&service, &Caller::Anonymous, "system.whoami", vec![]).unwrap(),
        Value::Nil
    );
}

#[test]
fn unknown_methods_and_bad_arguments_are_the_standard_faults() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    assert_eq!(
        fault_code(call(&service, &admin, "scheduler.nope", vec![])),
        -32601
    );
    assert_eq!(
        fault_code(call(&service, &admin, "scheduler.jobs.show", vec![])),
        -32602
    );
    assert_eq!(
        fault_code(call(
            &service,
            &admin,
            "scheduler.jobs.show",
            vec![Value::Array(vec![])]
        )),
        -32602
    );
    assert_eq!(
        fault_code(call(
            &service,
            &admin,
            "system.version",
            vec![Value::Int(1)]
        )),
        -32602
    );
    let methods = call(&service, &admin, "system.listMethods", vec![]).unwrap();
    let Value::Array(names) = methods else {
        panic!("{methods:?}")
    };
    assert!(names.contains(&Value::from("scheduler.jobs.submit")));
}

#[test]
fn changes_need_a_user_and_the_right_with_lava_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    let add = |caller: &Caller| {
        call(
            &service,
            caller,
            "scheduler.workers.add",
            vec![Value::from("w9"), Value::Nil, Value::Bool(false)],
        )
    };
    assert_eq!(fault_code(add(&Caller::Anonymous)), 401);
    service.add_user(&admin, "alice", false).unwrap();
    let token = service.add_token(&admin, "alice", "").unwrap();
    let alice = service.authenticate(&token).unwrap();
    assert_eq!(fault_code(add(&alice)), 403);
    assert_eq!(add(&admin).unwrap(), Value::Nil);
    assert_eq!(fault_code(add(&admin)), 409);
}

#[test]
fn devices_and_types_have_lava_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let list = call(&service, &admin, "scheduler.devices.list", vec![]).unwrap();
    let Value::Array(devices) = list else {
        panic!("{list:?}")
    };
    let device = &devices[0];
    assert_eq!(device.member("hostname"), Some(&Value::from("qemu-01")));
    assert_eq!(device.member("type"), Some(&Value::from("qemu")));
    assert_eq!(device.member("health"), Some(&Value::from("Unknown")));
    assert_eq!(device.member("state"), Some(&Value::from("Idle")));
    assert_eq!(device.member("current_job"), Some(&Value::Nil));

    let show = call(
        &service,
        &admin,
        "scheduler.devices.show",
        vec![Value::from("qemu-01")],
    )
    .unwrap();
    for key in [
        "hostname",
        "device_type",
        "state",
        "health",
        "health_job",
        "description",
        "pipeline",
        "has_device_dict",
        "worker",
        "current_job",
        "tags",
    ] {
        assert!(show.member(key).is_some(), "devices.show lacks {key}");
    }
    let dict = call(
        &service,
        &admin,
        "scheduler.devices.get_dictionary",
        vec![Value::from("qemu-01")],
    )
    .unwrap();
    assert_eq!(dict, Value::Base64(DICTIONARY.as_bytes().to_vec()));
    let rendered = call(
        &service,
        &admin,
        "scheduler.devices.get_dictionary",
        vec![Value::from("qemu-01"), Value::Bool(true), Value::Nil],
    )
    .unwrap();
    assert!(
        text(&rendered).contains("qemu-system-x86_64"),
        "{rendered:?}"
    );
    assert_eq!(
        call(
            &service,
            &admin,
            "scheduler.devices.set_dictionary",
            vec![Value::from("qemu-01"), Value::from(DICTIONARY)],
        )
        .unwrap(),
        Value::Bool(true),
        "lavacli reports failure unless set_dictionary returns true"
    );
    assert_eq!(
        fault_code(call(
            &service,
            &admin,
            "scheduler.devices.show",
            vec![Value::from("nope")]
        )),
        404
    );

    let types = call(
        &service,
        &admin,
        "scheduler.device_types.list",
        vec![Value::Bool(true)],
    )
    .unwrap();
    let Value::Array(types) = types else {
        panic!("{types:?}")
    };
    let qemu = types
        .iter()
        .find(|t| t.member("name") == Some(&Value::from("qemu")))
        .expect("qemu listed");
    assert_eq!(qemu.member("devices"), Some(&Value::Int(1)));
    assert_eq!(qemu.member("installed"), Some(&Value::Bool(true)));
    assert!(
        types
            .iter()
            .any(|t| t.member("installed") == Some(&Value::Bool(false))),
        "show_all lists templates not yet added"
    );
}

#[test]
fn jobs_have_lava_shapes_and_logs_page_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let id = call(
        &service,
        &admin,
        "scheduler.jobs.submit",
        vec![Value::from(JOB)],
    )
    .unwrap();
    let Value::Int(id) = id else { panic!("{id:?}") };
    // lavacli sends ids from its command line as strings.
    let show = call(
        &service,
        &admin,
        "scheduler.jobs.show",
        vec![Value::String(id.to_string())],
    )
    .unwrap();
    assert_eq!(show.member("state"), Some(&Value::from("Submitted")));
    assert_eq!(show.member("health"), Some(&Value::from("Unknown")));
    assert_eq!(show.member("submitter"), Some(&Value::from("admin")));
    assert!(matches!(show.member("submit_time"), Some(Value::DateTime(t)) if t.len() == 17));
    assert_eq!(show.member("end_time"), Some(&Value::Nil));
    assert_eq!(
        call(
            &service,
            &admin,
            "scheduler.jobs.definition",
            vec![Value::Int(id)]
        )
        .unwrap(),
        Value::from(JOB)
    );
    let logs = call(
        &service,
        &admin,
        "scheduler.jobs.logs",
        vec![Value::Int(id), Value::Int(0), Value::Nil],
    )
    .unwrap();
    assert_eq!(
        logs,
        Value::Array(vec![Value::Bool(false), Value::Base64(Vec::new())])
    );
    let list = call(
        &service,
        &admin,
        "scheduler.jobs.list",
        vec![
            Value::from("SUBMITTED"),
            Value::Nil,
            Value::Int(0),
            Value::Int(25),
            Value::Int(0),
            Value::Bool(true),
        ],
    )
    .unwrap();
    let Value::Array(jobs) = list else {
        panic!("{list:?}")
    };
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].member("start_time"), Some(&Value::Nil));
    assert_eq!(
        fault_code(call(
            &service,
            &admin,
            "scheduler.jobs.list",
            vec![Value::from("SLEEPING")]
        )),
        400
    );
    let invalid = call(
        &service,
        &admin,
        "scheduler.jobs.validate",
        vec![Value::from("job_name: x\n")],
    )
    .unwrap();
    assert!(invalid.member("msg").is_some(), "{invalid:?}");
    let valid = call(
        &service,
        &admin,
        "scheduler.jobs.validate",
        vec![Value::from(JOB)],
    )
    .unwrap();
    assert_eq!(valid, Value::Struct(vec![]));
    let bad = call(
        &service,
        &admin,
        "scheduler.jobs.submit",
        vec![Value::from("job_name: [")],
    );
    assert_eq!(fault_code(bad), 400);
    assert_eq!(
        call(
            &service,
            &admin,
            "scheduler.jobs.cancel",
            vec![Value::Int(id)]
        )
        .unwrap(),
        Value::Nil
    );
    let state = call(
        &service,
        &admin,
        "scheduler.job_state",
        vec![Value::Int(id)],
    )
    .unwrap();
    assert_eq!(state.member("job_state"), Some(&Value::from("Finished")));
    assert_eq!(
        fault_code(call(
            &service,
            &admin,
            "scheduler.jobs.logs",
            vec![Value::Int(id + 7)]
        )),
        404,
        "lavacli loops forever on HTTP errors in jobs logs: unknown jobs must be faults"
    );
}

#[test]
fn multicall_runs_each_call_and_reports_faults_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    let calls = Value::Array(vec![
        Value::structure([
            ("methodName", Value::from("system.whoami")),
            ("params", Value::Array(vec![])),
        ]),
        Value::structure([
            ("methodName", Value::from("scheduler.devices.show")),
            ("params", Value::Array(vec![Value::from("nope")])),
        ]),
    ]);
    let result = call(&service, &admin, "system.multicall", vec![calls]).unwrap();
    let Value::Array(results) = result else {
        panic!("{result:?}")
    };
    assert_eq!(results[0], Value::Array(vec![Value::from("admin")]));
    assert_eq!(results[1].member("faultCode"), Some(&Value::Int(404)));
}

#[test]
fn datetimes_are_xmlrpc_basic_format_in_utc() {
    assert_eq!(
        datetime(Some(1_795_600_000_000)),
        Value::DateTime("20261125T09:46:40".into())
    );
    assert_eq!(datetime(None), Value::Nil);
}

#[test]
fn device_type_health_schedules_round_trip_through_add_update_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    call(
        &service,
        &admin,
        "scheduler.device_types.add",
        vec![
            Value::from("qemu"),
            Value::from("emulated"),
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(5),
            Value::from("jobs"),
        ],
    )
    .unwrap();
    let show = |service: &crate::master::service::Service| {
        call(
            service,
            &admin,
            "scheduler.device_types.show",
            vec![Value::from("qemu")],
        )
        .unwrap()
    };
    let shown = show(&service);
    assert_eq!(shown.member("health_frequency"), Some(&Value::Int(5)));
    assert_eq!(
        shown.member("health_denominator"),
        Some(&Value::from("jobs"))
    );
    assert_eq!(shown.member("description"), Some(&Value::from("emulated")));
    // No health check file: LAVA shows health checks as disabled.
    assert_eq!(shown.member("health_disabled"), Some(&Value::Bool(true)));
    call(
        &service,
        &admin,
        "scheduler.device_types.update",
        vec![
            Value::from("qemu"),
            Value::Nil,
            Value::Nil,
            Value::Nil,
            Value::Int(12),
            Value::from("hours"),
            Value::Nil,
        ],
    )
    .unwrap();
    let shown = show(&service);
    assert_eq!(shown.member("health_frequency"), Some(&Value::Int(12)));
    assert_eq!(
        shown.member("health_denominator"),
        Some(&Value::from("hours"))
    );
    assert_eq!(shown.member("description"), Some(&Value::from("emulated")));
    assert_eq!(
        fault_code(call(
            &service,
            &admin,
            "scheduler.device_types.update",
            vec![
                Value::from("qemu"),
                Value::Nil,
                Value::Nil,
                Value::Nil,
                Value::Int(1),
                Value::from("weeks")
            ],
        )),
        400
    );
}

#[test]
fn device_tags_are_added_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let tags = |service: &crate::master::service::Service| {
        call(
            service,
            &admin,
            "scheduler.devices.tags.list",
            vec![Value::from("qemu-01")],
        )
        .unwrap()
    };
    for tag in ["usb", "fast", "usb"] {
        call(
            &service,
            &admin,
            "scheduler.devices.tags.add",
            vec![Value::from("qemu-01"), Value::from(tag)],
        )
        .unwrap();
    }
    assert_eq!(
        tags(&service),
        Value::Array(vec![Value::from("fast"), Value::from("usb")])
    );
    call(
        &service,
        &admin,
        "scheduler.devices.tags.delete",
        vec![Value::from("qemu-01"), Value::from("usb")],
    )
    .unwrap();
    assert_eq!(tags(&service), Value::Array(vec![Value::from("fast")]));
    assert_eq!(
        fault_code(call(
            &service,
            &Caller::Anonymous,
            "scheduler.devices.tags.add",
            vec![Value::from("qemu-01"), Value::from("x")],
        )),
        401
    );
    assert_eq!(
        fault_code(call(
            &service,
            &admin,
            "scheduler.devices.tags.add",
            vec![Value::from("qemu-01"), Value::from("no spaces")],
        )),
        400
    );
}

#[test]
fn the_queue_and_the_legacy_calls_scripts_still_use() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let first = service.submit(&admin, JOB, None).unwrap();
    let second = service.submit(&admin, JOB, None).unwrap();
    let queue = call(
        &service,
        &admin,
        "scheduler.jobs.queue",
        vec![
            Value::Array(vec![Value::from("qemu")]),
            Value::Int(0),
            Value::Int(25),
        ],
    )
    .unwrap();
    let Value::Array(queue) = queue else {
        panic!("{queue:?}")
    };
    let ids: Vec<_> = queue.iter().map(|j| j.member("id").cloned()).collect();
    assert_eq!(
        ids,
        vec![Some(Value::from(first)), Some(Value::from(second))],
        "oldest first"
    );
    assert_eq!(
        queue[0].member("requested_device_type"),
        Some(&Value::from("qemu"))
    );
    let other = call(
        &service,
        &admin,
        "scheduler.jobs.queue",
        vec![Value::Array(vec![Value::from("beaglebone-black")])],
    )
    .unwrap();
    assert_eq!(other, Value::Array(vec![]));
    let all = call(&service, &admin, "scheduler.all_devices", vec![]).unwrap();
    assert_eq!(
        all,
        Value::Array(vec![Value::Array(vec![
            Value::from("qemu-01"),
            Value::from("qemu"),
            Value::from("Idle"),
            Value::Nil,
            Value::Bool(true),
        ])])
    );
    let output = call(
        &service,
        &admin,
        "scheduler.job_output",
        vec![Value::Int(first as i64)],
    )
    .unwrap();
    assert_eq!(output, Value::Base64(Vec::new()), "no log yet");
}

#[test]
fn a_refused_add_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (service, admin, _) = service(dir.path());
    lab(&service, &admin);
    let bad_type = call(
        &service,
        &admin,
        "scheduler.device_types.add",
        vec![
            Value::from("qemu-aarch64"),
            Value::Nil,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(3),
            Value::from("fortnights"),
        ],
    );
    assert_eq!(fault_code(bad_type), 400);
    assert!(
        service.device_type("qemu-aarch64").is_err(),
        "no half-made type"
    );
    let bad_device = call(
        &service,
        &admin,
        "scheduler.devices.add",
        vec![
            Value::from("qemu-02"),
            Value::from("qemu"),
            Value::from("w1"),
            Value::Nil,
            Value::Nil,
            Value::Bool(true),
            Value::from("SPARKLING"),
        ],
    );
    assert_eq!(fault_code(bad_device), 400);
    assert!(service.device("qemu-02").is_err(), "no half-made device");
}
