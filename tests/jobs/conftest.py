from tests.periods.conftest import calendar  # noqa: F401 - the fixed calendar fixture
