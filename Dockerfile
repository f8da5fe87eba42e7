# syntax=docker/dockerfile:1
# INDI for Python in a container: indiserver with the telescope and CCD simulators by default.
#
#   docker build -t indi-python .
#   docker run -d --name indi -p 7624:7624 indi-python
#   docker run -d --name indi -p 7624:7624 indi-python -vv indi_simulator_ccd     (indiserver's arguments)
#   docker run -d --name indi -p 7624:7624 indi-python indiserver -v indi_simulator_focus indi_simulator_wheel
#   docker run -d --name indi-web -p 8624:8624 -p 7624:7624 -e INDI_HEALTHCHECK=web indi-python indi-web
#
# Real hardware: pass the device in (--device /dev/ttyUSB0) and, for USB cameras, -v /dev/bus/usb:/dev/bus/usb;
# the indi user is in the dialout and video groups. Driver configurations and indi-web's profiles live in
# /var/lib/indi (a volume: -v indi-data:/var/lib/indi keeps them).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# numpy and fitsio come as binary wheels: no compiler needed.
RUN python -m venv /opt/indi \
    && /opt/indi/bin/pip install . \
    && /opt/indi/bin/indiserver --help > /dev/null

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PATH=/opt/indi/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# uid/gid 1000, the first user of most hosts: a bind-mounted directory of theirs is writable as is.
RUN groupadd --gid 1000 indi \
    && useradd --uid 1000 --gid indi --groups dialout,video --create-home --home-dir /var/lib/indi \
        --shell /usr/sbin/nologin indi
COPY --from=build /opt/indi /opt/indi
COPY deploy/docker/healthcheck.py /opt/indi/healthcheck.py
COPY deploy/docker/entrypoint.sh /opt/indi/entrypoint.sh
USER 1000:1000
WORKDIR /var/lib/indi
VOLUME ["/var/lib/indi"]
EXPOSE 7624 8624
# Really asks the server: connects, sends <getProperties version="1.7"/> and waits for a definition
# (INDI_HEALTHCHECK=web checks indi-web's HTTP API on 8624 instead).
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["python", "/opt/indi/healthcheck.py"]
# Arguments are indiserver's (docker run IMAGE -vv indi_simulator_ccd), or another of our programs.
ENTRYPOINT ["/opt/indi/entrypoint.sh"]
CMD ["-v", "indi_simulator_telescope", "indi_simulator_ccd"]
