//! Routes: Jinja templates (minijinja) over an object event, compiled once at cold start.
//!
//! A string that is exactly one `{{ expression }}` keeps the expression's type, so
//! `size: "{{ size }}"` renders the number `1024`, not the string `"1024"`. Any other string
//! renders as text; strings with no `{{`/`{%` are literals and cost nothing per event.

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::event::ObjectEvent;

/// A template failed to compile or render.
#[derive(Debug, Clone, thiserror::Error)]
#[error("template {name}: {message}")]
pub struct TemplateError {
    name: String,
    message: String,
}

impl TemplateError {
    /// The template's name: the field it was written in (`routes[0] (r).target.conf.k`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn new(name: &str, error: &minijinja::Error) -> Self {
        let mut message = error.to_string();
        if let Some(detail) = error.detail()
            && !message.contains(detail)
        {
            message = format!("{message}: {detail}");
        }
        // minijinja names the expression (`event.buckett` is undefined); say what exists.
        if error.kind() == minijinja::ErrorKind::UndefinedError {
            let fields: Vec<&str> = CONTEXT_NAMES
                .iter()
                .copied()
                .filter(|name| !matches!(*name, "event" | "route"))
                .collect();
            message = format!("{message}; an event has: {}", fields.join(", "));
        }
        TemplateError {
            name: name.to_owned(),
            message,
        }
    }
}

/// Handle to a compiled string template.
#[derive(Debug, Clone)]
pub enum StringTemplate {
    /// No template syntax: used as is.
    Literal(String),
    /// A compiled template, by name in [`Templates`].
    Compiled(String),
}

/// A JSON tree whose strings may be templates.
#[derive(Debug, Clone)]
pub enum ValueTemplate {
    /// A value with no template syntax anywhere in it.
    Literal(Json),
    /// A string rendered as text.
    Text(String),
    /// A lone `{{ expression }}`, rendered as the expression's JSON value.
    Native(String),
    /// An array of templates.
    Array(Vec<ValueTemplate>),
    /// An object whose values are templates (keys are literal).
    Object(Vec<(String, ValueTemplate)>),
}

/// What templates see: every [`ObjectEvent`] field at the top level, the whole event as
/// `event`, and the route name as `route`.
#[derive(Serialize)]
struct Context<'a> {
    #[serde(flatten)]
    fields: &'a ObjectEvent,
    event: &'a ObjectEvent,
    route: &'a str,
}

/// One event on one route, ready to render: the template context is built once and shared by
/// every target of the route.
pub struct RenderContext<'a> {
    templates: &'a Templates,
    event: &'a ObjectEvent,
    route: &'a str,
    context: Value,
}

impl<'a> RenderContext<'a> {
    /// The context for `event` on `route`, over the configuration's `templates`.
    pub fn new(templates: &'a Templates, event: &'a ObjectEvent, route: &'a str) -> Self {
        let context = Context {
            fields: event,
            event,
            route,
        };
        RenderContext {
            templates,
            event,
            route,
            context: Value::from(minijinja::value::Serde(&context)),
        }
    }

    /// The event.
    pub fn event(&self) -> &'a ObjectEvent {
        self.event
    }

    /// The route's name.
    pub fn route(&self) -> &'a str {
        self.route
    }

    /// Renders a string template.
    pub fn string(&self, template: &StringTemplate) -> Result<String, TemplateError> {
        self.templates.render_string(template, &self.context)
    }

    /// Renders a JSON tree of templates.
    pub fn value(&self, template: &ValueTemplate) -> Result<Json, TemplateError> {
        self.templates.render_value(template, &self.context)
    }

    /// Renders `template` if configured, else the whole event: the default payload of every
    /// target (Airflow `conf`, webhook body, Workflows argument).
    pub fn value_or_event(&self, template: Option<&ValueTemplate>) -> Result<Json, TemplateError> {
        match template {
            Some(template) => self.value(template),
            None => Ok(serde_json::to_value(self.event).unwrap_or(Json::Null)),
        }
    }
}

/// The names a template can use: [`ObjectEvent`]'s fields, `event`, and `route`.
pub const CONTEXT_NAMES: &[&str] = &[
    "bucket",
    "key",
    "size",
    "etag",
    "version_id",
    "sequencer",
    "event_name",
    "event_time",
    "region",
    "source",
    "record_id",
    "event",
    "route",
];

/// Jinja's global functions, which are not variables of ours.
const GLOBAL_FUNCTIONS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "lipsum",
    "cycler",
    "joiner",
];

/// All templates of a configuration, compiled into one environment.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// An empty environment with strict undefined variables and our filters:
    /// `slug`, `basename`, `dirname`, `stem`, `extension`, `sha256`, plus Jinja's builtins
    /// (`lower`, `replace`, `default`, `tojson`, `urlencode`, ...).
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("slug", slug);
        env.add_filter("native_json", native_json);
        env.add_filter("basename", |key: &str| basename(key).to_owned());
        env.add_filter("dirname", |key: &str| match key.rfind('/') {
            Some(index) => key[..index].to_owned(),
            None => String::new(),
        });
        env.add_filter("stem", |key: &str| {
            let name = basename(key);
            match name.rfind('.') {
                Some(index) if index > 0 => name[..index].to_owned(),
                _ => name.to_owned(),
            }
        });
        env.add_filter("extension", |key: &str| {
            let name = basename(key);
            match name.rfind('.') {
                Some(index) if index > 0 => name[index + 1..].to_owned(),
                _ => String::new(),
            }
        });
        env.add_filter("sha256", |text: &str| hex(&Sha256::digest(text.as_bytes())));
        Templates { env }
    }

    /// Compiles a string template named `name` (used in error messages).
    pub fn add_string(
        &mut self,
        name: &str,
        source: &str,
    ) -> Result<StringTemplate, TemplateError> {
        if !has_syntax(source) {
            return Ok(StringTemplate::Literal(source.to_owned()));
        }
        self.compile(name, source.to_owned())?;
        Ok(StringTemplate::Compiled(name.to_owned()))
    }

    /// Compiles a JSON tree of templates; `name` prefixes each leaf's name (`conf.bucket`).
    pub fn add_value(&mut self, name: &str, value: &Json) -> Result<ValueTemplate, TemplateError> {
        Ok(match value {
            Json::String(source) if has_syntax(source) => {
                if let Some(expression) = lone_expression(source) {
                    self.compile(name, format!("{{{{ ({expression}) | native_json }}}}"))?;
                    ValueTemplate::Native(name.to_owned())
                } else {
                    self.compile(name, source.clone())?;
                    ValueTemplate::Text(name.to_owned())
                }
            }
            Json::Array(items) => ValueTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.add_value(&format!("{name}[{index}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(map) => ValueTemplate::Object(
                map.iter()
                    .map(|(key, item)| {
                        Ok((key.clone(), self.add_value(&format!("{name}.{key}"), item)?))
                    })
                    .collect::<Result<_, TemplateError>>()?,
            ),
            literal => ValueTemplate::Literal(literal.clone()),
        })
    }

    /// Adds a template and rejects names no event provides, so a typo fails at load time
    /// (strict undefined alone would let `{{ typo | tojson }}` through as null).
    fn compile(&mut self, name: &str, source: String) -> Result<(), TemplateError> {
        self.env
            .add_template_owned(name.to_owned(), source)
            .map_err(|e| TemplateError::new(name, &e))?;
        let template = self
            .env
            .get_template(name)
            .map_err(|e| TemplateError::new(name, &e))?;
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|variable| !CONTEXT_NAMES.contains(&variable.as_str()))
            .filter(|variable| !GLOBAL_FUNCTIONS.contains(&variable.as_str()))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        Err(TemplateError {
            name: name.to_owned(),
            message: format!(
                "undefined variable(s) {}; available: {}",
                unknown.join(", "),
                CONTEXT_NAMES.join(", ")
            ),
        })
    }

    /// Renders a string template against a context value.
    fn render_string(
        &self,
        template: &StringTemplate,
        context: &Value,
    ) -> Result<String, TemplateError> {
        match template {
            StringTemplate::Literal(text) => Ok(text.clone()),
            StringTemplate::Compiled(name) => self.render(name, context),
        }
    }

    /// Renders a JSON tree of templates against a context value.
    fn render_value(
        &self,
        template: &ValueTemplate,
        context: &Value,
    ) -> Result<Json, TemplateError> {
        Ok(match template {
            ValueTemplate::Literal(value) => value.clone(),
            ValueTemplate::Text(name) => Json::String(self.render(name, context)?),
            ValueTemplate::Native(name) => {
                let json = self.render(name, context)?;
                serde_json::from_str(&json).map_err(|e| TemplateError {
                    name: name.clone(),
                    message: format!("expression did not render as JSON: {e}"),
                })?
            }
            ValueTemplate::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|item| self.render_value(item, context))
                    .collect::<Result<_, _>>()?,
            ),
            ValueTemplate::Object(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(key, item)| Ok((key.clone(), self.render_value(item, context)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
        })
    }

    fn render(&self, name: &str, context: &Value) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| TemplateError::new(name, &e))?;
        template
            .render(context)
            .map_err(|e| TemplateError::new(name, &e))
    }
}

/// A lone expression's value as JSON; undefined is an error (as it is when printed), not the
/// `null` that `tojson` would make of `{{ event.typo }}`.
fn native_json(value: Value) -> Result<String, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "the expression is undefined",
        ));
    }
    serde_json::to_string(&value).map_err(|error| {
        minijinja::Error::new(minijinja::ErrorKind::BadSerialization, error.to_string())
    })
}

fn has_syntax(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// The expression inside `{{ ... }}` when that is the whole string.
fn lone_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    Some(inner.trim())
}

fn basename(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Replaces every run of characters outside `[A-Za-z0-9_.~:+-]` (Airflow's run id alphabet)
/// with a single `-`.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut replaced = false;
    for c in text.chars() {
        if is_run_id_char(c) {
            out.push(c);
            replaced = false;
        } else if !replaced {
            out.push('-');
            replaced = true;
        }
    }
    out
}

/// Whether `c` is in Airflow's default `allowed_run_id_pattern`, `^[A-Za-z0-9_.~:+-]+$`.
pub fn is_run_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '~' | ':' | '+' | '-')
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use serde_json::json;

    fn event() -> ObjectEvent {
        ObjectEvent {
            source: Source::S3,
            bucket: "acme-landing".into(),
            key: "sales/2026/Q4 report.csv".into(),
            size: Some(1024),
            etag: Some("abc".into()),
            version_id: None,
            sequencer: Some("0A1B2C".into()),
            event_name: "ObjectCreated:Put".into(),
            event_time: Some("2026-11-25T08:00:00.000Z".into()),
            region: Some("eu-west-1".into()),
            record_id: None,
        }
    }

    #[test]
    fn lone_expressions_keep_their_type_and_text_stays_text() {
        let mut templates = Templates::new();
        let conf = json!({
            "size": "{{ size }}",
            "missing_version": "{{ version_id }}",
            "uri": "s3://{{ bucket }}/{{ key }}",
            "file": "{{ key | basename }}",
            "parts": ["{{ key | stem }}", "{{ key | extension }}", "{{ key | dirname }}"],
            "fixed": 7,
            "route": "{{ route }}",
            "nested": { "source": "{{ event.source }}" }
        });
        let template = templates.add_value("conf", &conf).unwrap();
        let event = event();
        let rendered = RenderContext::new(&templates, &event, "r1")
            .value(&template)
            .unwrap();
        assert_eq!(
            rendered,
            json!({
                "size": 1024,
                "missing_version": null,
                "uri": "s3://acme-landing/sales/2026/Q4 report.csv",
                "file": "Q4 report.csv",
                "parts": ["Q4 report", "csv", "sales/2026"],
                "fixed": 7,
                "route": "r1",
                "nested": { "source": "s3" }
            })
        );
    }

    #[test]
    fn slug_keeps_airflow_alphabet_and_collapses_the_rest() {
        assert_eq!(slug("sales/2026/Q4 report.csv"), "sales-2026-Q4-report.csv");
        assert_eq!(slug("a//b"), "a-b");
        assert_eq!(slug("ok_.~:+-"), "ok_.~:+-");
        let mut templates = Templates::new();
        let t = templates
            .add_string("id", "{{ key | slug }}-{{ key | sha256 }}")
            .unwrap();
        let event = event();
        let text = RenderContext::new(&templates, &event, "r")
            .string(&t)
            .unwrap();
        assert!(text.starts_with("sales-2026-Q4-report.csv-"), "{text}");
        assert_eq!(text.len(), "sales-2026-Q4-report.csv-".len() + 64);
    }

    #[test]
    fn undefined_variables_and_syntax_errors_are_named() {
        let mut templates = Templates::new();
        let err = templates
            .add_string("routes[0].run_id", "{{ key ")
            .unwrap_err();
        assert!(
            err.to_string().starts_with("template routes[0].run_id:"),
            "{err}"
        );

        for source in [
            "{{ buckett }}",
            "x-{{ buckett | lower }}",
            "{% if buckett %}x{% endif %}",
        ] {
            let err = templates
                .add_string("routes[0].note", source)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("template routes[0].note: undefined variable(s) buckett;"),
                "{err}"
            );
            assert!(err.contains("available: bucket, key"), "{err}");
        }
        let err = templates
            .add_value("conf", &json!({"k": "{{ keyy }}"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("template conf.k: undefined variable(s) keyy"),
            "{err}"
        );
        // A typo in an attribute of a known name is caught when rendering (strict undefined).
        let t = templates
            .add_string("routes[0].x", "{{ event.buckett }}")
            .unwrap();
        let event = event();
        let err = RenderContext::new(&templates, &event, "r")
            .string(&t)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("template routes[0].x: undefined value"),
            "{err}"
        );
        assert!(err.contains("`event.buckett` is undefined"), "{err}");
        assert!(err.contains("an event has: bucket, key, size,"), "{err}");
        // A lone expression keeps its type, and an undefined one is an error too (not null).
        let t = templates
            .add_value("conf", &json!({"k": "{{ event.nope }}"}))
            .unwrap();
        let err = RenderContext::new(&templates, &event, "r")
            .value(&t)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("template conf.k: undefined value: the expression is undefined"),
            "{err}"
        );
        assert!(!err.contains("record_id, event"), "{err}");
    }
}
