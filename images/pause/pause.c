/* The pod sandbox's process: holds the pod's namespaces open, reaps orphans, exits on a signal.
 * Built static (gcc -static) so the image is this one file. warmpool's own, for the local node
 * (no registry to pull registry.k8s.io/pause from); users' clusters keep the upstream image. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_terminate(int signo) {
    (void)signo;
    _exit(0);
}

static void on_child(int signo) {
    (void)signo;
    /* PID 1 of the sandbox inherits orphans: reap every one that has exited. */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("warmpool pause");
        return 0;
    }
    if (getpid() != 1) {
        fputs("warning: pause should be the first process of its PID namespace\n", stderr);
    }
    struct sigaction terminate = {.sa_handler = on_terminate};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &terminate, NULL) < 0 || sigaction(SIGTERM, &terminate, NULL) < 0 ||
        sigaction(SIGCHLD, &child, NULL) < 0) {
        perror("sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
}
