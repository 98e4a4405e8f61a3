# lynxio in a container: a multi-stage build (the toolchain stays in the first stage) and a
# small runtime image (distroless: glibc, CA roots, no shell) running as a non-root user with
# the CA directory as a volume.
#
#   docker build -t lynxio .
#   docker run -d -p 8080:8080 -v lynxio-ca:/var/lib/lynxio lynxio --auth user:pass
#   docker run --rm -v lynxio-ca:/var/lib/lynxio lynxio ca export > lynxio-ca.pem
#
# Docker's default seccomp profile refuses io_uring: lynxio then runs on epoll (one log
# line). For io_uring, run with a seccomp profile that allows io_uring_setup/enter/register.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && install -D -m 0755 target/release/lynxio /out/usr/local/bin/lynxio \
    && install -d -m 0700 -o 65532 -g 65532 /out/var/lib/lynxio

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /
USER 65532:65532
ENV XDG_DATA_HOME=/var/lib
VOLUME ["/var/lib/lynxio"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/lynxio"]
# Listening on every interface makes the destination policy default to `public` (no private
# networks) and logs an OPEN PROXY warning until --auth is given.
CMD ["run", "--listen", "0.0.0.0:8080", "--ca-dir", "/var/lib/lynxio"]
