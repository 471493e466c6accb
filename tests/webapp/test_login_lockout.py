"""Repeated wrong passwords lock the username out from that address (django-axes)."""
import pytest
from django.conf import settings

from tests.conftest import PASSWORD


def fail_until_locked(client, url: str, username: str) -> list[int]:
    return [client.post(url, {"username": username, "password": "wrong"}).status_code
            for _ in range(settings.AXES_FAILURE_LIMIT)]


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_the_right_password_is_refused_after_repeated_failures(client, team_users, url):
    statuses = fail_until_locked(client, url, "alice")

    assert statuses[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # wrong password, form shown again
    assert statuses[-1] == 429
    response = client.post(url, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page
    assert "_auth_user_id" not in client.session


def test_a_lockout_is_per_username_and_address(client, team_users):
    fail_until_locked(client, "/login/", "alice")

    other_user = client.post("/login/", {"username": "charlie", "password": PASSWORD})
    assert other_user.status_code == 302
    client.logout()
    other_address = client.post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.1.2.3")
    assert other_address.status_code == 302


def test_a_success_before_the_limit_clears_the_count(client, team_users):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
