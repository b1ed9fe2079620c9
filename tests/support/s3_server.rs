//! An S3-compatible server for tests: s3s-fs (objects are files in a temporary folder) served
//! over HTTP on 127.0.0.1 with signature V4 checking.
//!
//! s3s-fs leaves ETags out of ListObjectsV2 answers, which AWS and MinIO always include; the
//! thin layer here adds them (the MD5 of the content, as AWS gives for single-part uploads).
//! It also honours `If-Match` on DeleteObject as AWS does (412 when the object holds another
//! version; s3s-fs ignores the header), counts the calls per operation so that tests can see
//! pagination happen and downloads not happen, and can overwrite an object right before a
//! delete arrives, as another writer racing the connector would.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use md5::{Digest, Md5};
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use s3s_fs::FileSystem;
use tokio::net::TcpListener;

use misp_feed::config::AwsSettings;
use misp_feed::secret::Secret;

pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key-for-s3s";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    pub endpoint: String,
    /// The folder that holds the buckets (one sub-folder each).
    pub root: tempfile::TempDir,
    calls: Arc<Calls>,
    overwrite_before_delete: Arc<Mutex<Option<Overwrite>>>,
    task: tokio::task::JoinHandle<()>,
}

/// How many requests of each kind the server answered.
#[derive(Default)]
struct Calls {
    list: AtomicUsize,
    get: AtomicUsize,
    head: AtomicUsize,
    delete: AtomicUsize,
}

/// Bytes to write over an object when a delete of it arrives, before the delete is judged.
struct Overwrite {
    bucket: String,
    key: String,
    bytes: Vec<u8>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        let calls = Arc::new(Calls::default());
        let overwrite_before_delete = Arc::new(Mutex::new(None));
        let store = ListingWithEtags {
            inner: FileSystem::new(root.path()).unwrap(),
            root: root.path().canonicalize().unwrap(),
            calls: calls.clone(),
            overwrite_before_delete: overwrite_before_delete.clone(),
        };
        let service = {
            let mut builder = S3ServiceBuilder::new(store);
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.build()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        S3Server {
            endpoint,
            root,
            calls,
            overwrite_before_delete,
            task,
        }
    }

    /// Settings that point the connector at this server (path-style left to its default).
    pub fn aws_settings(&self) -> AwsSettings {
        AwsSettings {
            endpoint_url: Some(self.endpoint.clone()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(Secret::new(SECRET_KEY)),
            region: Some(REGION.into()),
            force_path_style: None,
        }
    }

    /// A plain SDK client, to set up buckets and objects as another program would.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let credentials =
            aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .credentials_provider(credentials)
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.path().join(bucket)
    }

    pub fn list_calls(&self) -> usize {
        self.calls.list.load(Ordering::SeqCst)
    }

    /// GetObject requests answered so far: the downloads.
    pub fn get_calls(&self) -> usize {
        self.calls.get.load(Ordering::SeqCst)
    }

    pub fn head_calls(&self) -> usize {
        self.calls.head.load(Ordering::SeqCst)
    }

    pub fn delete_calls(&self) -> usize {
        self.calls.delete.load(Ordering::SeqCst)
    }

    /// The next DeleteObject of `bucket`/`key` finds the object already overwritten with
    /// `bytes`: another writer got in between the connector's last look and its delete.
    pub fn overwrite_before_next_delete(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        *self.overwrite_before_delete.lock().unwrap() = Some(Overwrite {
            bucket: bucket.into(),
            key: key.into(),
            bytes,
        });
    }
}

struct ListingWithEtags {
    inner: FileSystem,
    root: PathBuf,
    calls: Arc<Calls>,
    overwrite_before_delete: Arc<Mutex<Option<Overwrite>>>,
}

impl ListingWithEtags {
    fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// Writes the object's new bytes as s3s-fs would: the file, and no stored ETag left over
    /// from the old version (s3s-fs then computes it from the content).
    fn overwrite(&self, overwrite: Overwrite) {
        std::fs::write(
            self.object_path(&overwrite.bucket, &overwrite.key),
            &overwrite.bytes,
        )
        .unwrap();
        // s3s-fs keeps what it knows of an object (its ETag among it) beside the buckets.
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let info = self.root.join(format!(
            ".bucket-{}.object-{}.internal.json",
            encode(&overwrite.bucket),
            encode(&overwrite.key)
        ));
        let _ = std::fs::remove_file(info);
    }
}

fn md5_hex(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(Md5::digest(&bytes)))
}

#[async_trait::async_trait]
impl S3 for ListingWithEtags {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.inner.put_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.calls.get.fetch_add(1, Ordering::SeqCst);
        self.inner.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.calls.head.fetch_add(1, Ordering::SeqCst);
        self.inner.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.calls.delete.fetch_add(1, Ordering::SeqCst);
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let pending = {
            let mut slot = self.overwrite_before_delete.lock().unwrap();
            match slot.take() {
                Some(o) if o.bucket == bucket && o.key == key => Some(o),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(overwrite) = pending {
            self.overwrite(overwrite);
        }
        if let Some(ETagCondition::ETag(expected)) = &req.input.if_match {
            let current = md5_hex(&self.object_path(&bucket, &key));
            if current.as_deref() != Some(expected.value()) {
                return Err(s3_error!(
                    PreconditionFailed,
                    "the object no longer holds the version named by If-Match"
                ));
            }
        }
        self.inner.delete_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.calls.list.fetch_add(1, Ordering::SeqCst);
        let bucket = req.input.bucket.clone();
        let mut response = self.inner.list_objects_v2(req).await?;
        for object in response.output.contents.iter_mut().flatten() {
            if object.e_tag.is_none()
                && let Some(key) = &object.key
            {
                let path = self.root.join(&bucket).join(key);
                object.e_tag = md5_hex(&path).map(ETag::Strong);
            }
        }
        Ok(response)
    }
}
