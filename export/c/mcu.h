/* The emulated board's side of driver.c: SysTick as a counter of emulated time, and the stack high-water
 * mark of one call by painting the free stack before it and finding the deepest word it overwrote. */
#ifndef ECGAE_MCU_H
#define ECGAE_MCU_H

#include <stdint.h>

#define MCU_SYST_CVR (*(volatile uint32_t *)0xE000E018u)

/* enables the FPU and SysTick, and prints the ticks of a loop of known instruction count */
void mcu_init(void);
void mcu_stack_paint(void);
unsigned long mcu_stack_used(void);

static inline unsigned long mcu_ticks(void) { return MCU_SYST_CVR; }

/* SysTick counts down from 2^24 - 1 and wraps */
#define mcu_elapsed(start, end) (((start) - (end)) & 0xFFFFFFUL)

#endif
