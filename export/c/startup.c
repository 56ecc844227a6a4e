/* Bare-metal start for the MPS2 AN386 board (Cortex-M4F) in QEMU: vector table, .data/.bss set-up, FPU
 * on, then main(); output goes through semihosting (newlib's librdimon). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mcu.h"

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define PAINT 0xA5A5A5A5u
#define CALIBRATION_LOOPS 1000000u /* of two instructions each: subs, bne */

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack, _stack_limit;
extern void initialise_monitor_handles(void);
int main(void);

static uint32_t *paint_sp;

void mcu_stack_paint(void)
{
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  paint_sp = sp;
  for (uint32_t *p = &_stack_limit; p < sp - 16; ++p) *p = PAINT;
}

unsigned long mcu_stack_used(void)
{
  uint32_t *p = &_stack_limit;
  while (p < paint_sp - 16 && *p == PAINT) ++p;
  return (unsigned long)((char *)paint_sp - (char *)p);
}

void mcu_init(void)
{
  uint32_t n = CALIBRATION_LOOPS;
  unsigned long t0, t1;
  SYST_RVR = 0xFFFFFFu;
  MCU_SYST_CVR = 0;
  SYST_CSR = 5u; /* enabled, processor clock, no interrupt */
  t0 = mcu_ticks();
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
  t1 = mcu_ticks();
  printf("calibration %lu %lu\n", mcu_elapsed(t0, t1), 2UL * CALIBRATION_LOOPS);
}

void Reset_Handler(void)
{
  uint32_t *src = &_sidata;
  for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  SCB_CPACR |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
  __asm__ volatile("dsb\n\tisb");
  initialise_monitor_handles();
  exit(main());
}

void Fault_Handler(void)
{
  /* semihosting SYS_EXIT with a run-time error: QEMU stops instead of spinning forever */
  register uint32_t op __asm__("r0") = 0x18u;
  register uint32_t reason __asm__("r1") = 0x20023u;
  __asm__ volatile("bkpt 0xAB" : : "r"(op), "r"(reason) : "memory");
  for (;;) {
  }
}

__attribute__((section(".isr_vector"), used)) void (*const vectors[16])(void) = {
  (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
  Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
