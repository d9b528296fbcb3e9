# modelops: one package, two images. Targets:
#   serving   (default) the model server / pipeline router: python -m modelops.serving
#   operator  the kopf operator:                             python -m modelops.operator
# Both run as uid 65532 with no fixed ENTRYPOINT and write only under /tmp, so they work with a
# read-only root filesystem (Kubernetes mounts /tmp as an emptyDir).
#
# Users:  docker build --target serving -t modelops/serving .        (python:3.11-slim, PyPI)
# Offline (CI, no registry): tools/image/build.sh, which passes a locally made base image and
# fills tools/image/wheels/ on the host, so pip installs with --no-index.

ARG BASE_IMAGE=python:3.11-slim

# --- deps: a venv at /opt/modelops with the pinned dependencies (its own cached layer) --------
FROM ${BASE_IMAGE} AS deps
# auto: install offline from tools/image/wheels/ when it holds wheels; off: always use the index.
ARG WHEELS=auto
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/modelops
WORKDIR /src
COPY tools/image/ tools/image/
COPY pyproject.toml ./
RUN sh tools/image/install-python-deps.sh deps

# --- package: the modelops wheel, checked against the deps, staged under /opt/package-root ----
# Staging only the package's own files keeps a code change from re-copying the whole venv.
FROM deps AS package
ARG WHEELS=auto
COPY pyproject.toml README.m[d] LICENS[E] ./
COPY modelops/ modelops/
RUN sh tools/image/install-python-deps.sh package

# --- deps-runtime: the venv without pip, setuptools and the libraries' own test suites -------
FROM deps AS deps-runtime
RUN /opt/modelops/bin/python -m pip uninstall --quiet --yes pip setuptools \
 && find /opt/modelops/lib -depth -type d -name tests -exec rm -rf {} +

# --- runtime: what both images share --------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/modelops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
COPY --from=deps-runtime /opt/modelops /opt/modelops
COPY --from=package /opt/package-root/ /
# Give uid 65532 a name: kopf identifies itself with getpass.getuser(), which fails without one.
RUN echo 'modelops:x:65532:65532:modelops:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'modelops:x:65532:' >> /etc/group
WORKDIR /tmp
USER 65532:65532
LABEL org.opencontainers.image.title="modelops" \
      org.opencontainers.image.description="Serve scikit-learn models on Kubernetes and roll them back on their error rate" \
      org.opencontainers.image.licenses="Apache-2.0"

# --- operator --------------------------------------------------------------------------------
FROM runtime AS operator
CMD ["python", "-m", "modelops.operator"]

# --- serving (last, so it is the default target) ---------------------------------------------
FROM runtime AS serving
EXPOSE 8080
CMD ["python", "-m", "modelops.serving"]
