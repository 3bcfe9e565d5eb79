/**
 * The {@code loftq} command line ({@link dev.loftq.djl.cli.LoftqCli}): {@code quantize} and
 * {@code inspect}. The only code of the library that prints.
 */
package dev.loftq.djl.cli;
