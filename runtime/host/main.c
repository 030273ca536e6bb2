/*
 * main.c - the moonlet binary: the command line of cli.c over the public
 * API, nothing more.
 */
#include "moonlet.h"

int main(int argc, char **argv) {
  return moonlet_main(argc, argv);
}
