//! Listing: the XML answers of S3's ListObjectsV2, ListObjectVersions, GetBucketVersioning and
//! its error documents, read with `roxmltree` (no DTDs, no external entities). Only the fields
//! we use are read; elements are matched by local name, whatever the namespace.
//! See <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html> and
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html>.

use roxmltree::{Document, Node};

use crate::event::decode_key;

/// One current object, as a listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Object key, decoded when the listing was URL-encoded.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without its quotes.
    pub etag: Option<String>,
    /// Version id (`None` for unversioned objects, S3's `null` version included).
    pub version_id: Option<String>,
    /// `LastModified` as S3 gave it (RFC 3339).
    pub last_modified: Option<String>,
}

/// One page of a listing, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Current objects on this page, in key order.
    pub objects: Vec<Listed>,
    /// Entries S3 returned that are not current objects (older versions, delete markers).
    pub passed_over: usize,
    /// Where the next page starts, when the listing is truncated.
    pub next: Option<Next>,
}

/// The cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// ListObjectsV2's opaque `NextContinuationToken`.
    Token(String),
    /// ListObjectVersions' `NextKeyMarker` (decoded) and `NextVersionIdMarker`.
    Markers {
        /// Key marker.
        key: String,
        /// Version id marker, if any.
        version: Option<String>,
    },
}

/// An S3 error document: `<Error><Code>…</Code><Message>…</Message></Error>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Error {
    /// `AccessDenied`, `NoSuchBucket`, `PermanentRedirect`, ...
    pub code: String,
    /// S3's message.
    pub message: String,
    /// The bucket's region, when S3 says it (`PermanentRedirect`, `AuthorizationHeaderMalformed`).
    pub region: Option<String>,
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).map(|c| c.text().unwrap_or(""))
}

fn root<'a, 'i>(doc: &'a Document<'i>, name: &str) -> Result<Node<'a, 'i>, String> {
    let root = doc.root_element();
    match root.tag_name().name() {
        found if found == name => Ok(root),
        found => Err(format!("expected <{name}>, found <{found}>")),
    }
}

/// Whether S3 URL-encoded the keys (`<EncodingType>url</EncodingType>`): only then are they
/// decoded, so a server that ignores `encoding-type` cannot have a key decoded twice.
fn decoder(root: Node<'_, '_>) -> impl Fn(&str) -> Result<String, String> {
    let encoded = text(root, "EncodingType").is_some_and(|t| t.eq_ignore_ascii_case("url"));
    move |raw: &str| match encoded {
        true => decode_key(raw).map_err(|_| format!("key {raw:?} is not valid UTF-8 once decoded")),
        false => Ok(raw.to_owned()),
    }
}

fn truncated(root: Node<'_, '_>) -> bool {
    text(root, "IsTruncated").is_some_and(|t| t.trim() == "true")
}

fn object(
    entry: Node<'_, '_>,
    decode: &impl Fn(&str) -> Result<String, String>,
) -> Result<Listed, String> {
    let key = text(entry, "Key").ok_or("an entry has no <Key>")?;
    let key = decode(key)?;
    let size = match text(entry, "Size") {
        Some(size) => size
            .trim()
            .parse()
            .map_err(|_| format!("key {key:?}: <Size> {size:?} is not a number"))?,
        None => 0,
    };
    Ok(Listed {
        size,
        etag: text(entry, "ETag")
            .map(|etag| etag.trim().trim_matches('"').to_owned())
            .filter(|etag| !etag.is_empty()),
        version_id: text(entry, "VersionId")
            .map(str::trim)
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_owned),
        last_modified: text(entry, "LastModified").map(|t| t.trim().to_owned()),
        key,
    })
}

/// Reads a ListObjectsV2 page (`<ListBucketResult>`).
pub fn objects_page(body: &str) -> Result<Page, String> {
    let doc = Document::parse(body).map_err(|e| format!("not XML: {e}"))?;
    let root = root(&doc, "ListBucketResult")?;
    let decode = decoder(root);
    let objects = root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Contents")
        .map(|entry| object(entry, &decode))
        .collect::<Result<Vec<_>, _>>()?;
    let next = match truncated(root) {
        false => None,
        true => Some(Next::Token(
            text(root, "NextContinuationToken")
                .filter(|t| !t.is_empty())
                .ok_or("truncated, but no <NextContinuationToken>")?
                .to_owned(),
        )),
    };
    Ok(Page {
        objects,
        passed_over: 0,
        next,
    })
}

/// Reads a ListObjectVersions page (`<ListVersionsResult>`): keeps each `<Version>` with
/// `IsLatest` true; delete markers and older versions are passed over.
pub fn versions_page(body: &str) -> Result<Page, String> {
    let doc = Document::parse(body).map_err(|e| format!("not XML: {e}"))?;
    let root = root(&doc, "ListVersionsResult")?;
    let decode = decoder(root);
    let mut page = Page {
        objects: Vec::new(),
        passed_over: 0,
        next: None,
    };
    for entry in root.children().filter(Node::is_element) {
        match entry.tag_name().name() {
            "Version" if text(entry, "IsLatest").is_some_and(|t| t.trim() == "true") => {
                page.objects.push(object(entry, &decode)?);
            }
            "Version" | "DeleteMarker" => page.passed_over += 1,
            _ => {}
        }
    }
    if truncated(root) {
        let key = text(root, "NextKeyMarker")
            .filter(|t| !t.is_empty())
            .ok_or("truncated, but no <NextKeyMarker>")?;
        page.next = Some(Next::Markers {
            key: decode(key)?,
            version: text(root, "NextVersionIdMarker")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        });
    }
    Ok(page)
}

/// Reads GetBucketVersioning's answer: whether the bucket has (or had) versioning, so that
/// objects carry version ids. `Enabled` and `Suspended` both do; a bucket never versioned
/// answers with no `<Status>`. S3 names the root `<VersioningConfiguration>`; moto
/// `<GetBucketVersioningResponse>`, which is read the same way.
pub fn versioned(body: &str) -> Result<bool, String> {
    let doc = Document::parse(body).map_err(|e| format!("not XML: {e}"))?;
    let root = root(&doc, "VersioningConfiguration")
        .or_else(|error| root(&doc, "GetBucketVersioningResponse").map_err(|_| error))?;
    Ok(matches!(
        text(root, "Status").map(str::trim),
        Some("Enabled" | "Suspended")
    ))
}

/// Reads an S3 error document; `None` when the body is not one (a `HEAD`, a proxy's page).
pub fn error(body: &str) -> Option<S3Error> {
    let doc = Document::parse(body).ok()?;
    let root = root(&doc, "Error").ok()?;
    Some(S3Error {
        code: text(root, "Code").unwrap_or_default().trim().to_owned(),
        message: text(root, "Message").unwrap_or_default().trim().to_owned(),
        region: text(root, "Region")
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>in%2F</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<Contents><Key>in/a+b%2Bc.csv</Key><LastModified>2026-11-25T08:00:00.000Z</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>in/caf%C3%A9.csv</Key><LastModified>2026-11-25T08:00:01.000Z</LastModified><ETag>"abc-2"</ETag><Size>10485760</Size></Contents>
<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>"#;

    #[test]
    fn reads_a_url_encoded_objects_page() {
        let page = objects_page(V2).unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["in/a b+c.csv", "in/café.csv"]);
        assert_eq!(
            page.objects[0].etag.as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(page.objects[1].etag.as_deref(), Some("abc-2"));
        assert_eq!(page.objects[1].size, 10_485_760);
        assert_eq!(page.objects[0].version_id, None);
        assert_eq!(
            page.next,
            Some(Next::Token(
                "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=".into()
            ))
        );
    }

    #[test]
    fn raw_keys_are_kept_as_given_when_not_encoded() {
        let raw = V2
            .replace("<EncodingType>url</EncodingType>", "")
            .replace("<IsTruncated>true", "<IsTruncated>false");
        let page = objects_page(&raw).unwrap();
        assert_eq!(page.objects[0].key, "in/a+b%2Bc.csv");
        assert_eq!(page.next, None);
    }

    #[test]
    fn versions_keep_only_current_objects() {
        let body = r#"<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<NextKeyMarker>in/d+e.csv</NextKeyMarker><NextVersionIdMarker>v9</NextVersionIdMarker>
<DeleteMarker><Key>in/a.csv</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest></DeleteMarker>
<Version><Key>in/a.csv</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest><ETag>"e1"</ETag><Size>1</Size></Version>
<Version><Key>in/b.csv</Key><VersionId>v3</VersionId><IsLatest>true</IsLatest><ETag>"e3"</ETag><Size>3</Size><LastModified>2026-11-25T08:00:00.000Z</LastModified></Version>
<Version><Key>in/b.csv</Key><VersionId>v2</VersionId><IsLatest>false</IsLatest><ETag>"e2"</ETag><Size>2</Size></Version>
<Version><Key>in/c.csv</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><ETag>"e4"</ETag><Size>4</Size></Version>
</ListVersionsResult>"#;
        let page = versions_page(body).unwrap();
        let found: Vec<(&str, Option<&str>)> = page
            .objects
            .iter()
            .map(|o| (o.key.as_str(), o.version_id.as_deref()))
            .collect();
        assert_eq!(found, [("in/b.csv", Some("v3")), ("in/c.csv", None)]);
        assert_eq!(page.passed_over, 3);
        assert_eq!(
            page.next,
            Some(Next::Markers {
                key: "in/d e.csv".into(),
                version: Some("v9".into())
            })
        );
    }

    #[test]
    fn versioning_status_and_errors() {
        let ns = r#"xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;
        assert!(!versioned(&format!("<VersioningConfiguration {ns}/>")).unwrap());
        assert!(!versioned(&format!("<GetBucketVersioningResponse {ns}/>")).unwrap());
        assert!(versioned("<GetBucketVersioningResponse><Status>Enabled</Status></GetBucketVersioningResponse>").unwrap());
        assert!(
            versioned("<Error><Code>AccessDenied</Code></Error>")
                .unwrap_err()
                .contains("found <Error>")
        );
        for (status, want) in [("Enabled", true), ("Suspended", true)] {
            let body = format!(
                "<VersioningConfiguration {ns}><Status>{status}</Status></VersioningConfiguration>"
            );
            assert_eq!(versioned(&body).unwrap(), want, "{status}");
        }
        let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>r</RequestId></Error>";
        let error = error(denied).unwrap();
        assert_eq!(
            (error.code.as_str(), error.message.as_str()),
            ("AccessDenied", "Access Denied")
        );
        assert_eq!(super::error("<html>proxy</html>"), None);
        assert!(objects_page("<ListBucketResult><Contents><Key>a</Key>").is_err());
        assert!(objects_page(denied).unwrap_err().contains("found <Error>"));
        let no_token = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(
            objects_page(no_token)
                .unwrap_err()
                .contains("NextContinuationToken")
        );
    }

    #[test]
    fn documents_with_a_dtd_are_refused() {
        let evil = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ListBucketResult><Contents><Key>&e;</Key></Contents></ListBucketResult>"#;
        // roxmltree refuses documents with a DTD: nothing is expanded, from outside or inside.
        let error = objects_page(evil).unwrap_err();
        assert!(error.contains("not XML"), "{error}");
    }
}
