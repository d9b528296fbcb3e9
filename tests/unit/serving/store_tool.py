"""Seed the loopback test stores; run by the test-servers venv's python (boto3, mlflow there).

  store_tool.py iam ENDPOINT                 -> JSON {key, secret} of a new IAM user allowed s3:*
  store_tool.py put ENDPOINT KEY SECRET BUCKET OBJECT FILE
  store_tool.py log TRACKING_URI NAME SERIALIZATION JOBLIB...
                                             -> JSON {versions}: one new registered version each
"""

import json
import sys


def s3(endpoint, service="s3", key="test", secret="test"):
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def iam(endpoint):
    client = s3(endpoint, "iam")
    client.create_user(UserName="fetcher")
    client.put_user_policy(UserName="fetcher", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    created = client.create_access_key(UserName="fetcher")["AccessKey"]
    print(json.dumps({"key": created["AccessKeyId"], "secret": created["SecretAccessKey"]}))


def put(endpoint, key, secret, bucket, name, path):
    client = s3(endpoint, key=key, secret=secret)
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    client.upload_file(path, bucket, name)


def log_model(uri, name, serialization, *artifacts):
    import joblib
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(uri)
    versions = []
    for artifact in artifacts:
        with mlflow.start_run():
            mlflow.sklearn.log_model(joblib.load(artifact), name="model", registered_model_name=name,
                                     serialization_format=serialization)
        found = mlflow.MlflowClient().search_model_versions(f"name='{name}'")
        versions.append(str(max(int(v.version) for v in found)))
    print(json.dumps({"versions": versions}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"iam": iam, "put": put, "log": log_model}[command](*args)
