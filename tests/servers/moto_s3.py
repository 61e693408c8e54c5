"""Helper for tests against a moto S3 server started with
INITIAL_NO_AUTH_ACTION_COUNT=4 (so every later request must carry a valid
SigV4 signature of a key moto knows).

    moto_s3.py setup URL BUCKET      -> {"key_id": ..., "secret": ...}
    moto_s3.py list URL KEY_ID SECRET BUCKET PREFIX
                                     -> {"<object key>": "<sha256 of its bytes>", ...}

Run with target/servers/venv-moto/bin/python (boto3 comes with moto).
"""

import hashlib
import json
import sys

import boto3


def client(service, url, key_id, secret):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def setup(url, bucket):
    # The first four actions run unauthenticated: user, key, policy, attach.
    iam = client("iam", url, "setup", "setup")
    iam.create_user(UserName="bench")
    key = iam.create_access_key(UserName="bench")["AccessKey"]
    policy = iam.create_policy(
        PolicyName="s3-all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    iam.attach_user_policy(UserName="bench", PolicyArn=policy["Policy"]["Arn"])
    s3 = client("s3", url, key["AccessKeyId"], key["SecretAccessKey"])
    s3.create_bucket(Bucket=bucket)
    print(json.dumps({"key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))


def list_objects(url, key_id, secret, bucket, prefix):
    s3 = client("s3", url, key_id, secret)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = hashlib.sha256(body).hexdigest()
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "list":
        list_objects(*sys.argv[2:7])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
