"""Permissions policy documents: what is refused (with the reason) and IAM's evaluation order."""

from __future__ import annotations

import json

import pytest

from proxy.auth.policy import PolicyInvalid, decide, parse
from proxy.auth.principals import Domain, Principal

DOMAIN = Domain("local", "000000000000")
READER = Principal("reader", DOMAIN.user_arn("reader"), access_key_id="AKIDREADER", secret_access_key="s")
CI = Principal("ci", DOMAIN.user_arn("ci"), access_key_id="AKIDCI", secret_access_key="s")
ANONYMOUS = Principal("anonymous", "arn:aws:iam::000000000000:anonymous")


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(who: str, action: str, **extra: object) -> dict:
    return {"Effect": "Allow", "Principal": {"AWS": DOMAIN.user_arn(who)}, "Action": action, **extra}


def repo_policy(repository: str, document: str):  # type: ignore[no-untyped-def]
    return parse(document, DOMAIN.repository_contents(repository))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"Version": "2012-10-17"}), "has no Statement"),
        (json.dumps({"Version": "2099-01-01", "Statement": []}), "Version must be"),
        (json.dumps({"Statement": [], "Extra": 1}), "unknown policy element 'Extra'"),
        (doc({"Effect": "Maybe", "Principal": "*", "Action": "*"}), 'Statement[0].Effect must be "Allow"'),
        (doc({"Effect": "Allow", "Principal": "*"}), "Statement[0] has no Action"),
        (doc({"Effect": "Allow", "Action": "*"}), "Statement[0] has no Principal"),
        (
            doc(allow("ci", "codeartifact:Frobnicate")),
            "'codeartifact:Frobnicate' matches no CodeArtifact action",
        ),
        (doc(allow("ci", "s3:GetObject")), "is not a codeartifact action"),
        (doc(allow("ci", "*", Condition={})), "Statement[0].Condition is not supported"),
        (doc(allow("ci", "*", Resource="bucket")), "Statement[0].Resource 'bucket' is not an ARN"),
        (doc({"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "*"}), "is not an IAM ARN"),
        (doc(allow("ci", [])), "Statement[0].Action must be a non-empty string"),
        ("x" * 5121, "longer than 5120"),
    ],
)
def test_a_malformed_policy_is_refused_naming_what_is_wrong(document, reason):
    with pytest.raises(PolicyInvalid) as caught:
        parse(document, DOMAIN.contents())
    assert reason in str(caught.value)


def test_an_allow_in_the_repository_policy_grants_only_that_action_principal_and_repository():
    policy = repo_policy("release", doc(allow("reader", "codeartifact:ReadFromRepository")))
    release, dev = DOMAIN.repository_arn("release"), DOMAIN.repository_arn("dev")
    assert decide(READER, "codeartifact:ReadFromRepository", release, [policy])
    assert not decide(READER, "codeartifact:PublishPackageVersion", release, [policy])
    assert not decide(CI, "codeartifact:ReadFromRepository", release, [policy])
    assert not decide(READER, "codeartifact:ReadFromRepository", dev, [policy])
    assert not decide(READER, "codeartifact:ReadFromRepository", release, [])  # no policy: deny


def test_wildcard_actions_and_resources_match_case_insensitively_in_the_action():
    policy = parse(
        doc(
            allow(
                "ci",
                "codeartifact:Publish*",
                Resource="arn:aws:codeartifact:*:000000000000:repository/local/d*",
            )
        ),
        DOMAIN.contents(),
    )
    assert decide(CI, "codeartifact:PublishPackageVersion", DOMAIN.repository_arn("dev"), [policy])
    assert decide(CI, "CODEARTIFACT:publishpackageversion", DOMAIN.repository_arn("dev"), [policy])
    assert not decide(CI, "codeartifact:PublishPackageVersion", DOMAIN.repository_arn("release"), [policy])


def test_an_explicit_deny_in_the_domain_policy_beats_an_allow_in_the_repository_policy():
    repository = repo_policy("dev", doc(allow("ci", "codeartifact:*")))
    domain = parse(
        doc(
            {"Effect": "Deny", "Principal": {"AWS": DOMAIN.user_arn("ci")}, "Action": "codeartifact:Publish*"}
        ),
        DOMAIN.contents(),
    )
    dev = DOMAIN.repository_arn("dev")
    assert not decide(CI, "codeartifact:PublishPackageVersion", dev, [domain, repository])
    assert decide(CI, "codeartifact:ReadFromRepository", dev, [domain, repository])


def test_account_principals_cover_every_principal_but_never_anonymous():
    policy = repo_policy(
        "dev", doc({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "*"})
    )
    dev = DOMAIN.repository_arn("dev")
    assert decide(CI, "codeartifact:ReadFromRepository", dev, [policy])
    assert decide(READER, "codeartifact:ReadFromRepository", dev, [policy])
    assert not decide(ANONYMOUS, "codeartifact:ReadFromRepository", dev, [policy])
    everyone = repo_policy("dev", doc({"Effect": "Allow", "Principal": "*", "Action": "*"}))
    assert not decide(ANONYMOUS, "codeartifact:ReadFromRepository", dev, [everyone])
