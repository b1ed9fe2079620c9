//! An S3-compatible server for tests: s3s-fs (objects are files in a temporary folder) served
//! over HTTP on 127.0.0.1 with signature V4 checking.
//!
//! s3s-fs leaves ETags out of ListObjectsV2 answers, which AWS and MinIO always include; the
//! thin layer here adds them (the MD5 of the content, as AWS gives for single-part uploads)
//! and counts list calls so tests can see pagination happen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use md5::{Digest, Md5};
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result};
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
    list_calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        let list_calls = Arc::new(AtomicUsize::new(0));
        let store = ListingWithEtags {
            inner: FileSystem::new(root.path()).unwrap(),
            root: root.path().canonicalize().unwrap(),
            list_calls: list_calls.clone(),
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
            list_calls,
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
        self.list_calls.load(Ordering::SeqCst)
    }
}

struct ListingWithEtags {
    inner: FileSystem,
    root: PathBuf,
    list_calls: Arc<AtomicUsize>,
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
        self.inner.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
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
