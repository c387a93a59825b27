/* The subcommands of the trm command line; main.c dispatches on argv[1]. Each takes the
 * arguments after the subcommand's name (argv[0] is the subcommand's name) and returns the
 * process exit status: 0 success, 1 a failure it reported on stderr, 2 a usage error. */
#ifndef TRM_TOOLS_COMMANDS_H
#define TRM_TOOLS_COMMANDS_H

int cmd_info(int argc, char **argv);   /* main.c side (info.c)  */
int cmd_solve(int argc, char **argv);  /* solve.c               */
int cmd_eval(int argc, char **argv);   /* eval.c                */
int cmd_data(int argc, char **argv);   /* data.c: sudoku | maze | arc generators */
int cmd_train(int argc, char **argv);  /* train.c               */

#endif
