"""Numbers out of range get a 400 that names the parameter, on every route that takes them
(moodstream.dashboard.numbers); never a 500 from deep in the database."""

from __future__ import annotations

import io

import pytest

from moodstream.dashboard.numbers import MAX_TIME, NumberOutOfRange, number
from tests.dashboard.conftest import TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}
RANGE_ROUTES = ("history", "history.csv", "summary", "lessons", "events")
OUT_OF_RANGE = ["from=-1e300&to=1e300", "to=1e19", "from=1e19", "to=nan", "from=-inf",
                "from=-1&to=10", "seconds=1e300", "seconds=-5", "seconds=0"]


@pytest.mark.parametrize("query", OUT_OF_RANGE)
@pytest.mark.parametrize("route", RANGE_ROUTES)
def test_a_range_out_of_range_is_a_400(app, route, query):
    response = app.test_client().get(f"/api/cameras/cam1/{route}?{query}", headers=BEARER)
    assert response.status_code == 400, (route, query, response.status_code)
    assert "must be" in response.json["error"]


@pytest.mark.parametrize("route,query", [
    ("lessons", "min_seconds=1e30"), ("lessons", "min_seconds=-1"),
    ("history", "step=1e30"), ("history", "step=-10"), ("history.csv", "step=1e19"),
    ("history", "offset=1e300"), ("history.csv", "offset=-50401"),
    ("live", "seconds=1e300"), ("live", "seconds=-1"), ("live", "seconds=nan"),
    ("live", "seconds=7200"),
])
def test_other_numbers_out_of_range_are_a_400(app, route, query):
    response = app.test_client().get(f"/api/cameras/cam1/{route}?{query}", headers=BEARER)
    assert response.status_code == 400, (route, query, response.status_code)
    assert query.split("=")[0] in response.json["error"]


@pytest.mark.parametrize("route", RANGE_ROUTES)
def test_the_widest_range_allowed_answers(app, route):
    response = app.test_client().get(
        f"/api/cameras/cam1/{route}?from=0&to={MAX_TIME:.0f}&min_seconds=0&offset=50400",
        headers=BEARER)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("fps", ["1e300", "-1", "nan", "inf", "241", "fast"])
def test_a_bulk_upload_with_fps_out_of_range_is_a_400(admin_client, fps):
    response = admin_client.post("/admin/bulk/", data={
        "csrf_token": admin_client.csrf, "fps": fps,
        "files": [(io.BytesIO(b"\xff\xd8\xff"), "a.jpg")]}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "fps must be" in response.get_data(as_text=True)


@pytest.mark.parametrize("raw", [True, [1], "1e400", "0x10"])
def test_number_refuses_what_is_not_a_plain_number(raw):
    with pytest.raises(NumberOutOfRange):
        number(raw, "n", low=0, high=100)
    assert number("", "n", low=0, high=1, default=0.5) == 0.5
