//! A job's `notify:` block read as LAVA reads it, and LAVA's `notification_criteria`: which
//! state change of the job sends what.

use serde_json::Value;

/// The state change being judged: the job's new state, its health then, and its health
/// before the change (LAVA's `old_health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition<'a> {
    /// `running` or `finished` (LAVA judges nothing else).
    pub state: &'a str,
    /// The job's health with that state.
    pub health: &'a str,
    /// Its health before.
    pub old_health: &'a str,
}

/// What to send, in the order LAVA queues it: the callbacks (`callbacks:` then `callback:`),
/// then the recipients.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Each callback mapping as given.
    pub callbacks: Vec<Value>,
    /// Each recipient's `to:` mapping as given; the submitter when neither recipients nor
    /// callbacks are given (as LAVA).
    pub recipients: Vec<Value>,
    /// `verbose`, `quiet` (LAVA's default) or `status-only`.
    pub verbosity: String,
}

/// Whether every other job a `dependency_query` selects is in the `status` (given the
/// query and the status).
pub type Dependencies<'a> = &'a dyn Fn(&str, &str) -> bool;

/// The job's `notify:` when its `criteria:` are met by `transition`; `None` otherwise (and
/// for jobs without one).
pub fn plan_for(
    definition: &Value,
    submitter: &str,
    transition: Transition<'_>,
    dependencies: Dependencies<'_>,
) -> Option<Plan> {
    let notify = definition.get("notify")?;
    let criteria = notify.get("criteria")?;
    if !criteria_met(criteria, transition, dependencies) {
        return None;
    }
    let mut callbacks: Vec<Value> = notify
        .get("callbacks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    callbacks.extend(notify.get("callback").filter(|c| c.is_object()).cloned());
    let mut recipients: Vec<Value> = notify
        .get("recipients")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|r| r.get("to").cloned()).collect())
        .unwrap_or_default();
    if recipients.is_empty() && callbacks.is_empty() {
        recipients.push(serde_json::json!({"method": "email", "user": submitter}));
    }
    let verbosity = notify
        .get("verbosity")
        .and_then(Value::as_str)
        .unwrap_or("quiet")
        .to_owned();
    Some(Plan {
        callbacks,
        recipients,
        verbosity,
    })
}

/// LAVA's `notification_criteria`, literally: `all`, `finished` and `running` look at the
/// state, `complete`, `incomplete` and `canceled` at the health, and a `type:` of regression
/// or progression compares the health with the job's own health before the change; with a
/// `dependency_query`, the other jobs it selects must be finished, running, complete,
/// incomplete or canceled too, as the status says.
pub fn criteria_met(criteria: &Value, t: Transition<'_>, dependencies: Dependencies<'_>) -> bool {
    let Some(status) = criteria.get("status").and_then(Value::as_str) else {
        return false;
    };
    if let Some(query) = criteria.get("dependency_query") {
        let checked = matches!(
            status,
            "finished" | "running" | "complete" | "incomplete" | "canceled"
        );
        if checked && !query.as_str().is_some_and(|q| dependencies(q, status)) {
            return false;
        }
    }
    match status {
        "all" => matches!(t.state, "running" | "finished"),
        "finished" => t.state == "finished",
        "running" => t.state == "running",
        _ => {
            let wanted = match status {
                "complete" => "complete",
                "incomplete" => "incomplete",
                _ => "canceled",
            };
            if t.health != wanted {
                return false;
            }
            match criteria.get("type").and_then(Value::as_str) {
                None => true,
                Some("regression") => t.old_health == "complete" && t.health == "incomplete",
                Some("progression") => t.old_health == "incomplete" && t.health == "complete",
                Some(_) => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t<'a>(state: &'a str, health: &'a str) -> Transition<'a> {
        Transition {
            state,
            health,
            old_health: "unknown",
        }
    }

    #[test]
    fn statuses_match_as_lavas_criteria_do() {
        let cases = [
            ("all", t("running", "unknown"), true),
            ("all", t("finished", "complete"), true),
            ("finished", t("running", "unknown"), false),
            ("finished", t("finished", "canceled"), true),
            ("running", t("running", "unknown"), true),
            ("complete", t("finished", "complete"), true),
            ("complete", t("finished", "incomplete"), false),
            ("incomplete", t("finished", "incomplete"), true),
            ("canceled", t("finished", "canceled"), true),
            ("canceled", t("running", "unknown"), false),
        ];
        for (status, transition, expected) in cases {
            assert_eq!(
                criteria_met(&json!({ "status": status }), transition, &|_, _| true),
                expected,
                "{status} {transition:?}"
            );
        }
    }

    #[test]
    fn a_dependency_query_must_hold_for_the_status() {
        let criteria = json!({"status": "complete", "dependency_query": "description__exact__x"});
        let seen = std::cell::RefCell::new(Vec::new());
        let record = |q: &str, s: &str| {
            seen.borrow_mut().push((q.to_owned(), s.to_owned()));
            false
        };
        assert!(!criteria_met(&criteria, t("finished", "complete"), &record));
        assert_eq!(
            seen.borrow().as_slice(),
            [("description__exact__x".to_owned(), "complete".to_owned())]
        );
        assert!(criteria_met(
            &criteria,
            t("finished", "complete"),
            &|_, _| true
        ));
    }

    #[test]
    fn regression_and_progression_compare_with_the_health_before() {
        let regression = json!({"status": "incomplete", "type": "regression"});
        assert!(!criteria_met(
            &regression,
            t("finished", "incomplete"),
            &|_, _| true
        ));
        let after_complete = Transition {
            old_health: "complete",
            ..t("finished", "incomplete")
        };
        assert!(criteria_met(&regression, after_complete, &|_, _| true));
        let progression = json!({"status": "complete", "type": "progression"});
        let after_incomplete = Transition {
            old_health: "incomplete",
            ..t("finished", "complete")
        };
        assert!(criteria_met(&progression, after_incomplete, &|_, _| true));
    }

    #[test]
    fn a_plan_lists_callbacks_then_recipients_and_defaults_to_the_submitter() {
        let definition = json!({"notify": {
            "criteria": {"status": "finished"},
            "callbacks": [{"url": "http://a"}],
            "callback": {"url": "http://b"},
            "recipients": [{"to": {"method": "email", "email": "x@example.com"}}],
        }});
        let plan = plan_for(&definition, "alice", t("finished", "complete"), &|_, _| {
            true
        })
        .unwrap();
        assert_eq!(
            plan.callbacks,
            [json!({"url": "http://a"}), json!({"url": "http://b"})]
        );
        assert_eq!(
            plan.recipients,
            [json!({"method": "email", "email": "x@example.com"})]
        );
        assert_eq!(plan.verbosity, "quiet");
        let bare = json!({"notify": {"criteria": {"status": "finished"}}});
        let plan = plan_for(&bare, "alice", t("finished", "complete"), &|_, _| true).unwrap();
        assert_eq!(
            plan.recipients,
            [json!({"method": "email", "user": "alice"})]
        );
        assert_eq!(
            plan_for(&bare, "alice", t("running", "unknown"), &|_, _| true),
            None
        );
    }
}
