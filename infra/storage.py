"""The job data bucket: private, encrypted, TLS only, short-lived objects, removed on destroy."""

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from worker_src.contract import JOB_PREFIXES


class JobBucket(Construct):
    """The bucket of job inputs, outputs and stored results (keys carry the job id)."""

    def __init__(self, scope: Construct, construct_id: str, *, retention_days: int = 7) -> None:
        """
        :param retention_days: days after which objects under inputs/, outputs/ and results/
            expire. @default 7
        """
        super().__init__(scope, construct_id)
        expiring = [
            s3.LifecycleRule(
                id=f"expire-{prefix.rstrip('/')}",
                prefix=prefix,
                expiration=Duration.days(retention_days),
            )
            for prefix in JOB_PREFIXES
        ]
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                *expiring,
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
            auto_delete_objects=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
